"""Parameter validation: every error names the bad key."""

import copy

import pytest
import yaml

from xaibench.params import ParamsError, load_params, validate_params
from xaibench.schema import params_hash

DEFAULT = yaml.safe_load(open("params.yaml"))


def broken(path: str, value):
    raw = copy.deepcopy(DEFAULT)
    *parents, leaf = path.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    if value is KeyError:
        del node[leaf]
    else:
        node[leaf] = value
    return raw


def test_default_params_are_valid():
    params = load_params("params.yaml")
    assert params.studies["catsdogs"].dataset == "catsdogs"


@pytest.mark.parametrize("path, value, message", [
    ("studies.catsdogs.train.lr", -0.1, "studies.catsdogs.train.lr: Input should be greater than 0"),
    ("studies.catsdogs.train.epochs", "ten", "studies.catsdogs.train.epochs: Input should be a valid integer"),
    ("studies.catsdogs.train.epoch", 3, "studies.catsdogs.train.epoch: Extra inputs are not permitted"),
    ("studies.catsdogs.attribute.lime.num_samples", KeyError, "studies.catsdogs.attribute.lime.num_samples: Field required"),
    ("studies.catsdogs.attribute.methods", ["lrp", "smoothgrad"], "studies.catsdogs.attribute.methods: unknown method(s) ['smoothgrad']"),
    ("studies.catsdogs.model", "resnet9000", "studies.catsdogs.model: unknown model 'resnet9000'"),
    ("studies.catsdogs.evaluate.deletion_fill", "white", "studies.catsdogs.evaluate.deletion_fill"),
    ("datasets.catsdogs.source", "kaggle", "datasets.catsdogs.source: Input should be 'synthetic', 'real' or 'folder'"),
    ("datasets.catsdogs.real.sha256", "abc", "datasets.catsdogs.real.sha256: must be a 64-character"),
    ("datasets.catsdogs.synthetic.n_per_class", 1, "datasets.catsdogs.synthetic.n_per_class: Input should be greater than or equal to 4"),
    ("datasets.catsdogs.preprocess.test_fraction", 0.85, "datasets.catsdogs.preprocess: val_fraction + test_fraction"),
    ("studies.catsdogs.dataset", "mnist", "studies.catsdogs.dataset: 'mnist' is not a key of `datasets`"),
    ("studies.catsdogs.kind", "gradcam-only", "studies.catsdogs: Input tag 'gradcam-only' found using 'kind' does not match"),
    ("studies.senn_cifar10.train.robustness_weight", -1, "studies.senn_cifar10.train.robustness_weight: Input should be greater than or equal to 0"),
    ("studies.senn_cifar10.evaluate.removal_fractions", [0.2, 1.5], "studies.senn_cifar10.evaluate.removal_fractions: every fraction must be in (0, 1)"),
    ("gad.support.alphas", [0, -2], "gad.support.alphas: alphas must be distinct and >= 0"),
    ("gad.architectures", ["resnet50"], "gad.architectures.0: Input should be 'resnet18' or 'vgg16'"),
    ("gad.datasets", ["mnist"], "gad.datasets: ['mnist'] not keys of `datasets`"),
    ("datasets.cifar10.synthetic.n_test_per_class", 0, "datasets.cifar10.synthetic.n_test_per_class: Input should be greater than or equal to 1"),
    ("reliability.studies", ["catsdogs", "mnist_study"], "reliability.studies: ['mnist_study'] are not studies of `studies`"),
    ("reliability.randomisation.exclude", {"ssd_cooc": ["lime"]}, "reliability.randomisation.exclude: ['ssd_cooc'] are not studies whose reliability is checked"),
    ("reliability.randomisation.steps", 0, "reliability.randomisation.steps: Input should be greater than or equal to 1"),
    ("reliability.input_noise.studies", ["catdogs"], "reliability.input_noise.studies: ['catdogs'] are not studies whose reliability is checked"),
    ("reliability.input_noise.radius", 0, "reliability.input_noise.radius: Input should be greater than 0"),
    ("reliability.seeds.studies", {"catsdogs": 1}, "reliability.seeds.studies: {'catsdogs': 1}: give k >= 2 seeds"),
    ("reliability.seeds.studies", {"catdogs": 3}, "reliability.seeds.studies: ['catdogs'] are not studies whose reliability is checked"),
    ("reliability.seeds.studies", {"gad": 3}, "reliability.seeds.studies: ['gad']: a grid study (GAD) is not retrained by seed"),
    ("datasets.catsdogs.synthetic.ear_contrast", [0.8, 0.2], "ear_contrast [0.8, 0.2]: give [low, high]"),
    ("datasets.catsdogs.synthetic.collar_agreement", 0.3, "datasets.catsdogs.synthetic.collar_agreement: Input should be greater than or equal to 0.5"),
    ("studies.catsdogs.evaluate.road.fractions", [0.5, 1.0], "studies.catsdogs.evaluate.road.fractions: each fraction must lie strictly between 0 and 1 (given: [0.5, 1.0])"),
    ("studies.catsdogs.evaluate.irof.segments", 1, "studies.catsdogs.evaluate.irof.segments: one superpixel removes the whole image at once"),
    ("studies.catsdogs.evaluate.infidelity.sigma", 0, "studies.catsdogs.evaluate.infidelity.sigma: Input should be greater than 0"),
    ("reliability.fills", ["mean", "white"], "reliability.fills.1: Input should be 'mean', 'black' or 'blur'"),
    ("studies.catsdogs.attribute.lime.sampling", "auto", "studies.catsdogs.attribute.lime.sampling: Input should be 'fixed' or 'adaptive'"),
    ("studies.catsdogs.attribute.lime.stopping.agreement", 1.2, "studies.catsdogs.attribute.lime.stopping.agreement: Input should be less than or equal to 1"),
    ("studies.ssd_coco.attribute.kernel_shap.pair", True, "studies.ssd_coco.attribute.kernel_shap.pair: Extra inputs are not permitted"),
    ("studies.catsdogs.weights", "my.pt", "studies.catsdogs: `weights` is now `train.weights`"),
    ("studies.catsdogs.train.weights", "my.pt", "train.weights: 'my.pt' needs a torchvision:<builder> or timm:<name> model"),
    ("studies.catsdogs.train.weights", "my.onnx", "studies.catsdogs.train.weights: give none, imagenet or a .pt"),
    ("compute.gpus_per_worker", 1, "compute: gpus_per_worker places Ray workers on GPUs: it needs backend: ray"),
    ("report.gallery_images", 0, "report.gallery_images: Input should be greater than or equal to 1"),
    ("report.base", 3, "report.base: Input should be a valid string"),
    # a method's options: validated by the schema it registered, an unknown key is an error
    ("studies.catsdogs.attribute.gradcam.layr", "auto", "studies.catsdogs.attribute.gradcam.layr: Extra inputs are not permitted"),
    ("studies.catsdogs.attribute.ig", {"n_steps": 1}, "studies.catsdogs.attribute.ig.n_steps: Input should be greater than or equal to 2"),
    ("studies.catsdogs.attribute.lime", KeyError, "studies.catsdogs.attribute: lime is listed in methods but its section `lime:` is missing"),
    ("studies.senn_cifar10.attribute.ig.steps", 8, "studies.senn_cifar10.attribute.ig.steps: Extra inputs are not permitted"),
    ("gad.attribute.integrated_gradients.n_steps", 0, "gad.attribute.integrated_gradients.n_steps: Input should be greater than or equal to 2"),
])
def test_bad_value_is_reported_with_its_key(path, value, message):
    with pytest.raises(ParamsError) as error:
        validate_params(broken(path, value))
    assert message in str(error.value)


def test_missing_file_says_where_to_run(tmp_path):
    with pytest.raises(ParamsError, match="run stages from the project root"):
        load_params(tmp_path / "params.yaml")


def test_params_hash_is_stable_and_sensitive():
    params = load_params("params.yaml")
    study = params.studies["catsdogs"]
    assert params_hash(study.train) == params_hash(study.train)
    assert params_hash(study.train) != params_hash(study.attribute)
    assert len(params_hash(study.train)) == 12


def yaml_block(page: str, marker: str) -> str:
    import re
    from pathlib import Path

    text = Path(__file__).resolve().parents[1].joinpath(page).read_text()
    return next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if marker in b)


def test_the_readme_block_for_your_own_model_and_folder_is_valid(tmp_path):
    """The README's "Your model on your images" block, added to the defaults, validates."""
    raw = copy.deepcopy(DEFAULT)
    for section, value in yaml.safe_load(yaml_block("README.md", "source: folder")).items():
        raw[section] = {**raw[section], **value}
    raw["studies"]["mine"]["train"]["weights"] = "none"          # no checkpoint file needed to validate
    params = validate_params(raw)
    assert params.studies["mine"].attribute.options_for("occlusion").window == 8
    assert params.datasets["mine"].preprocess.image_size == 224      # the model's input size


def test_the_tutorial_block_for_your_own_model_and_folder_is_valid():
    """The tutorial's params block, added to the defaults, validates."""
    block = yaml_block("docs/tutorial.md", "mypets")
    raw = copy.deepcopy(DEFAULT)
    for section, value in yaml.safe_load(block).items():   # datasets, studies, reliability
        raw[section] = {**raw[section], **value}
    params = validate_params(raw)
    assert params.studies["mypets"].train.weights == "/models/my_resnet50.pth"
    assert params.datasets["mypets"].preprocess.image_size == 224    # the model's input size


def with_changes(*changes):
    raw = copy.deepcopy(DEFAULT)
    for path, value in changes:
        *parents, leaf = path.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return raw


@pytest.mark.parametrize("changes, message", [
    # stopping with fixed sampling would be ignored
    ([("studies.catsdogs.attribute.lime.stopping", {"top_k": 3})],
     "studies.catsdogs.attribute.lime: stopping is given but sampling is fixed"),
    # min_samples above the budget: the rule would never be checked
    ([("studies.catsdogs.attribute.lime.sampling", "adaptive"), ("studies.catsdogs.attribute.lime.num_samples", 80)],
     "studies.catsdogs.attribute.lime: stopping.min_samples (100) is above num_samples (80)"),
    # top_k of all 50 segments is always the same set
    ([("studies.catsdogs.attribute.lime.sampling", "adaptive"),
      ("studies.catsdogs.attribute.lime.stopping", {"top_k": 50})],
     "stopping.top_k (50) is not below the number of segments (n_segments: 50)"),
    ([("studies.imagenet.attribute.lime.sampling", "adaptive"), ("studies.imagenet.attribute.lime.num_samples", 50)],
     "studies.imagenet.attribute.lime: stopping.min_samples (100) is above num_samples (50)"),
    ([("studies.ssd_coco.attribute.kernel_shap", {"sampling": "adaptive", "stopping": {"min_samples": 10_000}})],
     "studies.ssd_coco.attribute: kernel_shap.stopping.min_samples (10000) is above num_samples"),
    # SSD: 250 segments at reference 256 px are 62 at the 128 px twin: top_k 62 covers them all
    ([("studies.ssd_coco.attribute.lime", {"sampling": "adaptive", "stopping": {"top_k": 70}})],
     "studies.ssd_coco.attribute.lime.stopping.top_k (70) is not below the number of segments"),
])
def test_sampling_settings_that_cannot_take_effect_are_refused(changes, message):
    with pytest.raises(ParamsError) as error:
        validate_params(with_changes(*changes))
    assert message in str(error.value)


def test_adaptive_settings_that_take_effect_pass():
    params = validate_params(with_changes(("studies.catsdogs.attribute.lime.sampling", "adaptive"),
                                          ("studies.catsdogs.attribute.lime.stopping", {"top_k": 5})))
    assert params.studies["catsdogs"].attribute.lime.stopping.top_k == 5


def test_image_size_zero_gets_one_message():
    with pytest.raises(ParamsError) as error:
        validate_params(with_changes(("datasets.catsdogs.preprocess.image_size", 0)))
    text = str(error.value)
    assert "datasets.catsdogs.preprocess.image_size: Input should be greater than or equal to 16" in text
    assert text.count("image_size") == 1 and ".str" not in text and ".int" not in text


def test_a_duplicate_key_in_params_yaml_names_the_key_and_both_lines(tmp_path):
    text = open("params.yaml").read().replace("seed: ", "seed: 3\nseed: ", 1)
    (tmp_path / "params.yaml").write_text(text)
    line = text.splitlines().index("seed: 3") + 1
    with pytest.raises(ParamsError, match=f"key 'seed' appears twice in one section, on line {line} and on line "
                                          f"{line + 1}"):
        load_params(tmp_path / "params.yaml")


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 0\nstudies: [a\n")
    with pytest.raises(ParamsError, match=r"params.yaml: line 3, column 1: not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_a_named_model_that_cannot_run_at_the_datasets_size_is_refused_at_validation():
    raw = with_changes(("studies.catsdogs.model", "torchvision:vit_b_16"),
                       ("studies.catsdogs.train.weights", "imagenet"))
    with pytest.raises(ParamsError, match=r"studies.catsdogs.model: torchvision:vit_b_16 does not run on 64 px "
                                          r"inputs .*set the dataset's preprocess.image_size to torchvision:vit_b_16"):
        validate_params(raw)
    # random weights: the ViT is built for the dataset's 64 px (a multiple of its 16 px patches)
    assert validate_params(with_changes(("studies.catsdogs.model", "torchvision:vit_b_16"),
                                        ("studies.catsdogs.attribute.methods", ["gradcam", "lime", "random"]))
                           ).studies["catsdogs"]


@pytest.mark.parametrize("model, method, reason", [
    ("torchvision:vit_b_16", "lrp", "zennit's LRP composite has no rule for .*layer normalisation.*use attnlrp"),
    ("torchvision:convnext_tiny", "deeplift", "DeepLIFT's Rescale rule .* layer normalisation"),
    ("torchvision:resnet18", "attention_rollout", "attention rollout needs global self-attention"),
    ("torchvision:efficientnet_b0", "guided_backprop", "Guided Backpropagation / Deconvolution are defined for ReLU "
                                                    "networks"),
])
def test_a_method_the_model_has_no_rule_for_is_refused_at_validation_naming_both(model, method, reason):
    raw = with_changes(("studies.catsdogs.model", model), ("studies.catsdogs.attribute.methods", [method, "random"]))
    with pytest.raises(ParamsError, match=f"studies.catsdogs.attribute.methods: {method} cannot explain {model}: "
                                          f"{reason}"):
        validate_params(raw)


def test_any_registered_method_joins_the_saliency_senn_and_detection_studies_by_params():
    raw = with_changes(("studies.catsdogs.attribute.methods", ["lrp", "occlusion"]),
                       ("studies.senn_cifar10.attribute.methods", ["lime", "ig", "occlusion"]),
                       ("studies.senn_cifar10.attribute.occlusion", {"window": 4, "stride": 2}),
                       ("studies.ssd_coco.attribute.methods", ["lrp", "lime", "occlusion"]))
    params = validate_params(raw)
    assert params.studies["senn_cifar10"].attribute.options_for("occlusion").window == 4
    assert params.studies["ssd_coco"].attribute.options_for("occlusion").window == 8   # the schema's default
    assert params.studies["catsdogs"].attribute.options_for("occlusion").stride == 4
