"""Your model on your images, by params alone, and the same study on Ray.

A generated 3-class ImageFolder tree (JPEG/PNG/WebP, two corrupt files) as dataset
``mine`` (``source: folder``) and torchvision's ResNet-18 (whose blocks call one ReLU
module twice: DeepLIFT crashed on it before the graph rewrite) saved to a temporary
checkpoint and loaded by path, fine-tuned for one epoch: the saliency study's every
method, metric and reliability output through ``dvc repro``, beside a tiny cats-vs-dogs
twin study and a timm ViT study with random weights (``mine_vit``). Both
stream their images in chunks of 3. Then ``attribute`` and ``evaluate`` of the folder study
(and its reliability checks, whose randomisation cascade runs its steps on the workers)
rerun on a local Ray of two CPU workers: the same Parquet maps (runtimes aside) and
byte-identical metrics.
"""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tests.test_pipeline import ROOT, copy_project, dvc, set_key
from xaibench.data.folder import write_image_folder
from xaibench.models.external import build_external

METHODS = ["lrp", "gradcam", "deeplift", "lime", "random", "edge"]
TINY_CATSDOGS = {
    "datasets.catsdogs.synthetic.n_per_class": 14,
    "datasets.catsdogs.synthetic.n_corrupt": 1,
    "datasets.catsdogs.synthetic.min_size": 40,
    "datasets.catsdogs.synthetic.max_size": 56,
    "datasets.catsdogs.preprocess.image_size": 32,
    "studies.catsdogs.train.epochs": 1,
    "studies.catsdogs.attribute.n_images": 7,
    "studies.catsdogs.attribute.lime.num_samples": 20,
    "studies.catsdogs.attribute.lime.n_segments": 8,
    "studies.catsdogs.evaluate.steps": 4,
    "studies.catsdogs.evaluate.road.fractions": [0.5],
    "studies.catsdogs.evaluate.irof.segments": 4,
    "studies.catsdogs.evaluate.infidelity.runs": 4,
    "studies.catsdogs.evaluate.faithfulness_correlation.runs": 10,
    "studies.catsdogs.evaluate.faithfulness_correlation.subset_size": 32,
    "reliability.input_noise.studies": [],     # the whole-DAG test runs them; here they would run twice (Ray)
}
OUTPUTS = ["metrics/catsdogs.json", "metrics/mine.json", "metrics/catsdogs_reliability.json",
           "metrics/mine_reliability.json"]
# A vision transformer by params alone: every method that applies to it (AttnLRP, Grad-CAM
# on its last block's tokens, both rollouts, IG, controls) and every metric.
VIT_METHODS = ["attnlrp", "gradcam", "attention_rollout", "gradient_rollout", "ig", "lime", "random", "edge"]


def own_study(checkpoint: Path | None, model: str = "torchvision:resnet18", methods=METHODS) -> dict:
    """The tutorial's "my model on my folder" block, at test size."""
    return {"kind": "saliency", "dataset": "mine", "model": model,
            "train": {"epochs": 1, "lr": 0.0005, "batch_size": 8, "rotation_degrees": 0, "horizontal_flip": True,
                      "weights": str(checkpoint) if checkpoint else "none"},
            "attribute": {"n_images": 7, "methods": methods,
                          "lime": {"num_samples": 20, "n_segments": 8, "batch_size": 20}},
            "evaluate": {"steps": 4, "deletion_fill": "mean", "insertion_blur_sigma": 5.0, "batch_size": 32,
                         "faithfulness_correlation": {"runs": 10, "subset_size": 32},
                         "road": {"fractions": [0.25, 0.75]}, "irof": {"segments": 8},
                         "infidelity": {"runs": 6}}}


@pytest.fixture(scope="module")
def own_project(tmp_path_factory):
    work = tmp_path_factory.mktemp("own")
    env = copy_project(work, mlflow="0")
    write_image_folder(work / "my_images", n_classes=3, n_per_class=12, image_size=56, seed=3, n_corrupt=2,
                       masks=True)
    torch.manual_seed(0)
    torch.save(build_external("torchvision:resnet18", num_classes=3).state_dict(), work / "my_model.pt")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in TINY_CATSDOGS.items():
        set_key(params, key, value)
    params["datasets"] = {"catsdogs": params["datasets"]["catsdogs"], "mine": {
        "source": "folder", "synthetic": {}, "real": {"folder": str(work / "my_images"), "max_images_per_class": None},
        "preprocess": {"image_size": 48, "val_fraction": 0.2, "test_fraction": 0.25}}}
    params["studies"] = {"catsdogs": params["studies"]["catsdogs"], "mine": own_study(work / "my_model.pt"),
                         "mine_vit": own_study(None, "timm:vit_tiny_patch16_224", VIT_METHODS)}
    params["gad"]["datasets"] = ["catsdogs"]
    params["reliability"].update(studies=["catsdogs", "mine", "mine_vit"], n_resamples=100)
    params["reliability"]["randomisation"].update(n_images=2, steps=2, exclude={})
    params["compute"]["chunk_images"] = 3
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(work, "init", "--no-scm", "-q", env=env)
    log = dvc(work, "repro", "reliability@catsdogs", "reliability@mine", "reliability@mine_vit", env=env)
    return work, env, log


@pytest.mark.slow
def test_my_model_on_my_folder_gets_every_method_metric_and_reliability_output(own_project):
    work, _, log = own_project
    for stage in ("download", "preprocess", "train", "attribute", "evaluate", "reliability"):
        assert f"Running stage '{stage}@mine'" in log
    data = json.loads((work / "metrics/data_mine.json").read_text())
    assert data["images_skipped"] == 2 and data["images_kept"] == 36 and data["classes"] == 3
    assert json.loads((work / "data/prepared/mine/stats.json").read_text())["classes"] == [
        "class_0", "class_1", "class_2"]
    model = json.loads((work / "metrics/mine_model.json").read_text())
    assert model["model"] == "torchvision:resnet18" and model["n_test"] == 9
    results = json.loads((work / "metrics/mine.json").read_text())
    catsdogs = json.loads((work / "metrics/catsdogs.json").read_text())
    assert results.pop("explained") == {"n_images": 7, "n_images_requested": 7, "n_test": 9}
    axioms = results.pop("axioms")
    assert {m: a["axiom"] for m, a in axioms.items()} == {"lrp": "conservation", "deeplift": "completeness"}
    assert all(a["n"] == 7 and a["median_error"] is not None for a in axioms.values()), axioms
    assert axioms["deeplift"]["median_error"] < 1e-3, axioms   # summation-to-delta: exact on a ResNet
    assert set(results) == set(METHODS) and all(set(v) == set(catsdogs["lrp"]) for v in results.values())
    frame = pd.read_parquet(work / "data/attributions/mine/torchvision-resnet18/lrp.parquet")
    assert len(frame) == 7 and (frame.height == 48).all() and set(frame.predicted) <= {0, 1, 2}
    reliability = json.loads((work / "metrics/mine_reliability.json").read_text())
    expected = json.loads((work / "metrics/catsdogs_reliability.json").read_text())
    assert set(reliability) == set(expected)     # every section cats-vs-dogs gets
    assert set(reliability["randomisation"]["methods"]) == set(METHODS)
    # the folder's masks/ tree: localisation and the pointing game apply as on the twins
    assert reliability["localisation"]["available"] is True
    assert set(reliability["localisation"]["means"]) == set(METHODS)
    assert set(reliability["localisation"]["means"]["lrp"]) == set(expected["localisation"]["means"]["lrp"])


@pytest.mark.slow
def test_a_vision_transformer_by_params_alone_gets_every_applicable_method_metric_and_reliability_output(
        own_project):
    work, _, log = own_project
    for stage in ("train", "attribute", "evaluate", "reliability"):
        assert f"Running stage '{stage}@mine_vit'" in log
    results = json.loads((work / "metrics/mine_vit.json").read_text())
    mine = json.loads((work / "metrics/mine.json").read_text())
    results.pop("explained")
    axioms = results.pop("axioms")
    assert set(axioms) == {"attnlrp", "ig"} and axioms["attnlrp"]["axiom"] == "conservation"
    assert set(results) == set(VIT_METHODS) and all(set(v) == set(mine["lrp"]) for v in results.values())
    for method in VIT_METHODS:
        frame = pd.read_parquet(work / f"data/attributions/mine_vit/timm-vit_tiny_patch16_224/{method}.parquet")
        maps = frame.attribution.map(lambda a: abs(a).sum())
        assert len(frame) == 7 and (frame.height == 48).all() and (maps > 0).all(), method
    reliability = json.loads((work / "metrics/mine_vit_reliability.json").read_text())
    assert set(reliability["randomisation"]["methods"]) == set(VIT_METHODS)


def stored_maps(work: Path) -> dict:
    frames = {}
    for path in sorted((work / "data/attributions/mine").rglob("*.parquet")):
        frames[str(path.relative_to(work))] = pd.read_parquet(path).drop(columns="runtime_ms")
    return frames


@pytest.mark.slow
def test_ray_backend_gives_the_same_maps_and_metrics(own_project):
    work, env, _ = own_project
    local_maps = stored_maps(work)
    local_metrics = {name: (work / name).read_bytes() for name in OUTPUTS if "mine" in name}
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["compute"].update(backend="ray", workers=2)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the folder study only: the cats-vs-dogs twin runs the same kind's code on Ray (each
    # stage starts its own local Ray: six of them took 13 of this suite's 29 minutes)
    stages = [f"{stage}@mine" for stage in ("attribute", "evaluate", "reliability")]
    log = dvc(work, "repro", "--force", "--single-item", *stages, env=env)
    assert log.count("starting a local Ray with 2 workers") == 3
    ray_maps = stored_maps(work)
    assert set(ray_maps) == set(local_maps) and len(ray_maps) == 6
    for path, frame in local_maps.items():
        pd.testing.assert_frame_equal(ray_maps[path], frame, check_exact=True)
    for name, before in local_metrics.items():
        assert (work / name).read_bytes() == before, name


@pytest.mark.slow
def test_the_report_describes_my_study_from_its_params(own_project, tmp_path):
    """A folder study is not the cats-vs-dogs reproduction: its page names its own model,
    dataset, classes and size, cites no paper, and its gallery outlines the folder's masks."""
    from xaibench.params import load_params
    from xaibench.report.build import build_report

    work, _, _ = own_project
    assert build_report(work, tmp_path / "report", load_params(work / "params.yaml")) == ["catsdogs", "mine",
                                                                                          "mine_vit"]
    mine = (tmp_path / "report" / "mine.html").read_text()
    assert "torchvision:resnet18 on mine" in mine and "3 classes: class_0, class_1 and class_2" in mine
    assert "48 px" in mine and "your image folder" in mine
    assert "cats vs dogs" not in mine and "Siwek" not in mine and "Reproduces" not in mine
    assert "Yellow outline: your folder's object masks" in mine and "twin's cue mask" not in mine
    catsdogs = (tmp_path / "report" / "catsdogs.html").read_text()
    assert "Reproduces: Siwek" in catsdogs and "Yellow outline: the twin's cue mask" in catsdogs
    index = (tmp_path / "report" / "index.html").read_text()
    assert "Siwek" in index and index.count("Siwek") == 1


@pytest.mark.slow
def test_a_failing_method_names_itself_and_keeps_the_others_for_the_next_run(own_project, monkeypatch, caplog):
    """DeepLIFT made to fail mid-stage on the own model: the stage ends with one error that
    names the method and the model; the other methods' maps are kept and the next run
    explains only DeepLIFT."""
    import logging

    from xaibench.explain import METHODS as REGISTRY
    from xaibench.params import Compute, load_params
    from xaibench.studies import saliency
    from xaibench.tracking import _NoRun

    work, _, _ = own_project
    monkeypatch.chdir(work)
    params = load_params("params.yaml")
    params = params.model_copy(update={"compute": Compute()})       # local, whatever the Ray test left
    study = params.studies["mine"]

    def broken(*args, **kwargs):
        raise RuntimeError("a ReLU module called twice")

    import dataclasses

    monkeypatch.setitem(REGISTRY, "deeplift", dataclasses.replace(REGISTRY["deeplift"], explain=broken))
    with pytest.raises(saliency.MethodsFailed) as error:
        saliency.attribute("mine", study, params, _NoRun())
    text = str(error.value)
    assert text.startswith("method deeplift failed on model torchvision:resnet18: RuntimeError: a ReLU module")
    assert "lrp, gradcam, lime, random, edge" in text and "reused by the next run" in text
    kept = sorted(p.name for p in (work / "data/cache/attributions/mine").glob("*.parquet"))
    assert kept == sorted(f"{m}.parquet" for m in METHODS if m != "deeplift")
    monkeypatch.undo()
    monkeypatch.chdir(work)
    with caplog.at_level(logging.INFO, logger="xaibench"):
        saliency.attribute("mine", study, params, _NoRun())
    reused = [r.getMessage().split(":")[0] for r in caplog.records if "reused the maps" in r.getMessage()]
    assert reused == [m for m in METHODS if m != "deeplift"]
    assert not (work / "data/cache/attributions/mine").exists()        # used up
    assert len(pd.read_parquet(work / "data/attributions/mine/torchvision-resnet18/deeplift.parquet")) == 7
