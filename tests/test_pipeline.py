"""The whole DAG through `dvc repro` in a temporary copy, with tiny params.

Checks: every output exists; corrupt files are skipped and counted; the store has the
documented schema; MLflow got one run per stage with its tags and the heatmap grid;
changing an evaluation-only param reruns only `evaluate`; a forced rerun of the whole
pipeline from training on gives byte-identical science metrics for every study (wall-clock runtimes live in
their own ``*_runtime.json`` files, the only ones allowed to differ).
"""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "datasets.catsdogs.synthetic.n_per_class": 14,
    "datasets.catsdogs.synthetic.n_corrupt": 3,
    "datasets.catsdogs.synthetic.min_size": 40,
    "datasets.catsdogs.synthetic.max_size": 56,
    "datasets.catsdogs.preprocess.image_size": 32,
    "datasets.catsdogs_clear.synthetic.n_per_class": 6,
    "datasets.catsdogs_clear.synthetic.min_size": 40,
    "datasets.catsdogs_clear.synthetic.max_size": 48,
    "datasets.catsdogs_clear.preprocess.image_size": 32,
    "studies.catsdogs.train.epochs": 1,
    "studies.catsdogs.attribute.n_images": 4,
    "studies.catsdogs.attribute.lime.num_samples": 20,
    "studies.catsdogs.attribute.lime.n_segments": 8,
    "studies.catsdogs.evaluate.steps": 4,
    "studies.catsdogs.evaluate.road.fractions": [0.5],          # every optional metric, at its smallest
    "studies.catsdogs.evaluate.irof.segments": 4,
    "studies.catsdogs.evaluate.infidelity.runs": 4,
    "studies.catsdogs.evaluate.faithfulness_correlation.runs": 10,
    "studies.catsdogs.evaluate.faithfulness_correlation.subset_size": 32,
    "datasets.cifar10.synthetic.n_train_per_class": 6,
    "datasets.cifar10.synthetic.n_test_per_class": 2,
    "studies.senn_cifar10.train.epochs": 1,
    "studies.senn_cifar10.attribute.n_images": 10,
    "studies.senn_cifar10.attribute.ig.n_steps": 4,
    "studies.senn_cifar10.attribute.lime.num_samples": 20,
    "studies.senn_cifar10.attribute.lime.n_segments": 8,
    "studies.senn_cifar10.evaluate.n_removal_images": 10,
    "studies.senn_cifar10.evaluate.noise_sigmas": [0.05, 0.1],
    "studies.senn_cifar10.evaluate.n_stability_images": 3,
    "studies.senn_cifar10.evaluate.top_superpixels": 3,
    "datasets.cub.synthetic.n_per_species": 8,
    "datasets.cub.synthetic.image_size": 48,
    "datasets.cub.preprocess.image_size": 32,
    "gad.datasets": ["cub"],
    "gad.architectures": ["resnet18"],
    "gad.image_size": 32,
    "gad.train.epochs": 1,
    "gad.train.max_train_images": None,
    "gad.support.alphas": [0, 4],
    "gad.support.epochs": 1,
    "gad.attribute.n_per_class": 2,
    "gad.attribute.integrated_gradients.n_steps": 4,
    "datasets.coco.synthetic.n_train": 24,
    "datasets.coco.synthetic.n_test": 6,
    "datasets.coco.synthetic.image_size": 64,
    "datasets.coco.synthetic.min_object": 12,
    "datasets.coco.synthetic.max_object": 28,
    "datasets.coco.preprocess.image_size": 64,
    "studies.ssd_coco.train.epochs": 1,
    "studies.ssd_coco.attribute.n_boxes": 2,
    "studies.ssd_coco.attribute.min_score": 0.0,
    "studies.ssd_coco.attribute.num_samples": 20,
    "studies.ssd_coco.attribute.batch_size": 20,
    "studies.ssd_coco.evaluate.steps": 4,
    "datasets.imagenet.synthetic.n_per_class": 6,
    "datasets.imagenet.synthetic.image_size": 80,
    "datasets.imagenet.preprocess.image_size": 75,
    "studies.imagenet.train.epochs": 1,
    "studies.imagenet.attribute.n_images": 2,
    "studies.imagenet.attribute.lime.num_samples": 20,
    "studies.imagenet.attribute.lime.batch_size": 20,
    "studies.imagenet.attribute.lime.top_labels": 3,
    "studies.imagenet.attribute.shap_gradient.nsamples": 4,
    "studies.imagenet.attribute.shap_partition.max_evals": 40,
    "studies.imagenet.evaluate.steps": 4,
    "reliability.n_resamples": 100,
    "reliability.randomisation.n_images": 2,
    "reliability.randomisation.steps": 2,
    "reliability.input_noise.samples": 1,
    "reliability.seeds.studies": {"catsdogs": 2},
    "reliability.seeds.n_images": 2,
}
SECTIONS = {"localisation", "randomisation", "controls", "intervals", "agreement"}


def set_key(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree[key]
    tree[leaf] = value


def science_metrics(work: Path) -> dict:
    """Bytes of every metrics JSON but the runtime files, by path."""
    return {str(p.relative_to(work)): p.read_bytes() for p in sorted((work / "metrics").rglob("*.json"))
            if not p.name.endswith("_runtime.json")}


def no_runtime_keys(tree) -> bool:
    if isinstance(tree, dict):
        return all(not str(k).startswith("runtime") and no_runtime_keys(v) for k, v in tree.items())
    return True


def dvc(workdir: Path, *args: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=workdir, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def copy_project(work: Path, mlflow: str = "1") -> dict:
    """dvc.yaml, stages/ and src/ copied into ``work``; the environment its stages run in
    (this venv first on PATH, MLflow in ``work``, on or off)."""
    for name in ("dvc.yaml", "stages", "src"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, work / name)
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}", XAIBENCH_MLFLOW=mlflow)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    work = tmp_path_factory.mktemp("project")
    env = copy_project(work)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in TINY.items():
        set_key(params, key, value)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(work, "init", "--no-scm", "-q", env=env)
    first_log = dvc(work, "repro", env=env)
    return work, env, first_log


@pytest.mark.slow
def test_all_outputs_and_metrics(project):
    work, _, log = project
    for stage in ("download", "preprocess", "train", "attribute", "evaluate"):
        assert f"Running stage '{stage}@catsdogs'" in log
    for stage in ("download", "preprocess"):
        assert f"Running stage '{stage}@cifar10'" in log
    for stage in ("train", "attribute", "evaluate"):
        assert f"Running stage '{stage}@senn_cifar10'" in log
    for stage in ("gad_train@resnet18-cub", "gad_support@0", "gad_support@4",
                  "gad_attribute", "gad_evaluate"):
        assert f"Running stage '{stage}'" in log
    data = json.loads((work / "metrics/data_catsdogs.json").read_text())
    assert data["images_skipped"] == 3 and data["images_kept"] == 28
    results = json.loads((work / "metrics/catsdogs.json").read_text())
    assert results.pop("explained") == {"n_images": 4, "n_images_requested": 4, "n_test": 6}
    axioms = results.pop("axioms")   # the axiom gauge of the methods that have one
    assert set(axioms) == {"lrp", "deeplift"} and axioms["deeplift"]["median_error"] < 1e-3, axioms
    assert set(results) == {"lrp", "gradcam", "deeplift", "lime", "random", "edge"}
    assert all(set(v) == {"IAUC", "DAUC", "IC", "DC", "AD", "IIC", "faithfulness_correlation", "ROAD_MoRF",
                          "ROAD_LeRF", "SRG", "IROF", "infidelity", "sparseness", "complexity"}
               for v in results.values())
    model = json.loads((work / "metrics/catsdogs_model.json").read_text())
    assert {"train_accuracy", "val_accuracy", "test_accuracy"} <= set(model)
    curves = pd.read_csv(work / "metrics/plots/catsdogs/deletion.csv")
    assert list(curves.columns) == ["fraction", "lrp", "gradcam", "deeplift", "lime", "random", "edge"]
    assert len(curves) == 5
    frame = pd.read_parquet(work / "data/attributions/catsdogs/catsdogs_cnn/lime.parquet")
    assert len(frame) == 4 and (frame.height == 32).all() and len(frame.attribution.iloc[0]) == 32 * 32
    assert (work / "data/attributions/catsdogs/heatmaps.png").stat().st_size > 1000
    assert "Running stage 'reliability@catsdogs'" in log
    reliability = json.loads((work / "metrics/catsdogs_reliability.json").read_text())
    assert reliability["n_images"] == 4 and set(reliability["controls"]["IAUC"]["separated"]) == {
        "lrp", "gradcam", "deeplift", "lime"}
    low, high = reliability["intervals"]["by_metric"]["DAUC"]["lrp"]["interval"]
    assert low <= results["lrp"]["DAUC"] <= high


@pytest.mark.slow
def test_reliability_reports_of_every_study(project):
    work, _, log = project
    for study in ("catsdogs", "senn_cifar10", "ssd_coco", "imagenet"):
        assert f"Running stage 'reliability@{study}'" in log
    catsdogs = json.loads((work / "metrics/catsdogs_reliability.json").read_text())
    assert SECTIONS | {"fills", "saturation"} <= set(catsdogs)
    assert catsdogs["localisation"]["cue_flip"]["available"]
    assert set(catsdogs["localisation"]["means"]) == {"lrp", "gradcam", "deeplift", "lime", "random", "edge"}
    assert set(catsdogs["fills"]["DAUC"]) == {"mean", "black", "blur"}
    randomisation = catsdogs["randomisation"]
    assert {"random", "edge"} <= set(randomisation["failed"])     # model-independent: they must fail
    assert randomisation["methods"]["lrp"]["layers_random"] == [0, 3, 6]   # 4 conv + 2 linear layers, 2 steps
    assert "relevance_mass" in catsdogs["intervals"]["by_metric"]
    curves = pd.read_csv(work / "metrics/plots/reliability/catsdogs/randomisation.csv")
    assert len(curves) == 3 and "gradcam_spearman" in curves.columns
    senn = json.loads((work / "metrics/senn_cifar10_reliability.json").read_text())
    assert SECTIONS <= set(senn) and "senn" in senn["randomisation"]["methods"]
    assert "removal_drop:0.2" in senn["intervals"]["by_metric"]
    ssd = json.loads((work / "metrics/ssd_coco_reliability.json").read_text())
    assert {"randomisation", "intervals"} <= set(ssd) and "relevance_in_box" in ssd["intervals"]["by_metric"]
    imagenet = json.loads((work / "metrics/imagenet_reliability.json").read_text())
    assert set(imagenet["randomisation"]) == {"inception_v3", "resnet50"}
    assert "resnet50/edge" in imagenet["intervals"]["by_metric"]["relevance_mass"]
    gad = json.loads((work / "metrics/gad_reliability.json").read_text())["resnet18_cub"]
    assert {"localisation", "randomisation", "intervals"} <= set(gad)
    assert {"RC", "RS_gad", "relevance_mass"} <= set(gad["intervals"]["by_metric"])
    assert "uninformative" in catsdogs and "cue_importance" in catsdogs["localisation"]
    assert "cue_order" in catsdogs["intervals"]["by_metric"]


@pytest.mark.slow
def test_seeds_retrain_the_listed_study_and_say_so_for_the_others(project):
    work, _, log = project
    assert "Running stage 'seeds@catsdogs'" in log
    seeds = json.loads((work / "metrics/catsdogs_seeds.json").read_text())
    assert seeds["checked"] and seeds["seeds"] == [0, 1] and set(seeds["models"]) == {"0", "1"}
    iauc = seeds["by_metric"]["IAUC"]
    assert set(iauc["means"]["lrp"]) and len(iauc["means"]["lrp"]) == 2 and "0|1" in iauc["kendall_tau"]["pairs"]
    assert set(seeds["survive"]) | set(seeds["change"]) >= {"IAUC", "DAUC", "relevance_mass"}
    assert not json.loads((work / "metrics/senn_cifar10_seeds.json").read_text())["checked"]
    page = (work / "reports/catsdogs.html").read_text()
    assert 'id="seeds"' in page and (work / "reports/catsdogs/seeds.png").exists()


@pytest.mark.slow
def test_senn_study_outputs(project):
    work, _, _ = project
    results = json.loads((work / "metrics/senn_cifar10.json").read_text())
    assert {"faithfulness_correlation_mean", "faithfulness_correlation_std", "stability_cosine_mean",
            "stability_sigma_0.05", "stability_sigma_0.1"} <= set(results["senn"])
    assert {"confidence_drop_top_0.05", "flip_rate_top_0.5", "stability_jaccard_mean"} <= set(results["lime"])
    assert {"confidence_drop_top_0.2", "stability_ssim_mean"} <= set(results["ig"])
    assert {"reconstruction_mse", "reconstruction_mse_of_the_mean"} <= set(results["senn"])
    assert set(results["prediction_changes"]) == {"0.05", "0.1"}
    senn = pd.read_parquet(work / "data/attributions/senn_cifar10/senn/senn.parquet")
    assert len(senn) == 10 and (senn.height == 1).all() and (senn.width == 5).all()
    stability = pd.read_csv(work / "metrics/plots/senn_cifar10/stability.csv")
    assert list(stability.sigma) == [0.05, 0.1]
    for figure in ("data/attributions/senn_cifar10/prototypes.png",
                   "data/attributions/senn_cifar10/explanations_per_class.png",
                   "data/reports/senn_cifar10/stability.png"):
        assert (work / figure).stat().st_size > 1000


@pytest.mark.slow
def test_mlflow_has_one_run_per_stage_with_tags_and_artifacts(project):
    work, env, _ = project
    import mlflow

    client = mlflow.tracking.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("catsdogs")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["attribute", "evaluate", "reliability", "seeds", "train"]
    senn_runs = client.search_runs([client.get_experiment_by_name("senn_cifar10").experiment_id])
    train = next(r for r in senn_runs if r.info.run_name == "train")
    assert {"classification", "reconstruction", "sparsity", "robustness"} <= set(train.data.metrics)
    for run in runs:
        assert run.data.tags["stage"] == run.info.run_name and run.data.tags["data_source"] == "synthetic"
        assert "git_commit" in run.data.tags
    attribute = next(r for r in runs if r.info.run_name == "attribute")
    assert "heatmaps.png" in [a.path for a in client.list_artifacts(attribute.info.run_id)]
    train = next(r for r in runs if r.info.run_name == "train")
    assert "test_accuracy" in train.data.metrics and train.data.params["lr"] == "0.001"


@pytest.mark.slow
def test_evaluation_param_reruns_only_evaluate_and_results_are_byte_identical(project):
    work, env, _ = project
    before = science_metrics(work)
    assert {"metrics/catsdogs.json", "metrics/senn_cifar10.json", "metrics/ssd_coco.json", "metrics/imagenet.json",
            "metrics/gad.json", "metrics/gad/support/alpha4.json"} <= set(before)
    assert all(no_runtime_keys(json.loads(b)) for b in before.values())
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["studies"]["catsdogs"]["evaluate"]["steps"] = 8
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = dvc(work, "repro", env=env)
    assert "Running stage 'evaluate@catsdogs'" in log
    assert not any(f"Running stage '{s}@{t}'" in log for s in ("download", "preprocess", "train", "attribute")
                   for t in ("catsdogs", "cifar10", "senn_cifar10"))
    assert "Running stage 'evaluate@senn_cifar10'" not in log
    assert len(pd.read_csv(work / "metrics/plots/catsdogs/insertion.csv")) == 9
    params["studies"]["catsdogs"]["evaluate"]["steps"] = 4
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # everything again from training on (untracked: MLflow's start-up per stage is not what
    # this checks; the twins' determinism is tests/data's, and their regeneration would cost
    # this test a minute and a half), but SENN's chain: its stages are plain torch passes
    # the other chains share (the classifier loop, captum's IG, LIME); its 5 stages, at ~10 s
    # of start-up each, are what this test gives to the 20-minute test budget
    trains = ["train@catsdogs", "train@ssd_coco", "train@imagenet", "gad_train@resnet18-cub"]
    rerun = dvc(work, "repro", "--force", "--downstream", *trains, env=dict(env, XAIBENCH_MLFLOW="0"))
    assert "Running stage 'download@" not in rerun and "Running stage 'report'" in rerun
    after = science_metrics(work)
    assert after.keys() == before.keys()
    changed = [name for name in before if after[name] != before[name]]
    assert not changed, f"science metrics differ between two runs with the same params: {changed}"
    assert "up to date" in dvc(work, "repro", env=env)


@pytest.mark.slow
def test_gad_outputs_and_alpha_list_change_reruns_only_affected_entries(project):
    work, env, _ = project
    results = json.loads((work / "metrics/gad.json").read_text())
    methods = results["resnet18"]["cub"]
    assert set(methods) == {"saliency", "deconvolution", "input_x_gradient", "guided_backprop",
                            "integrated_gradients"}
    cell = methods["saliency"]["Warbler"]
    assert cell["rc_below_1"] + cell["rc_at_least_1"] == 4  # 2 images per class, both explained
    assert {"rs_gad", "rs_supplementary", "rc_mean"} <= set(cell)
    assert 0 <= cell["rs_supplementary_images"] <= 4    # images whose supplementary set is not empty
    support = json.loads((work / "metrics/gad/support/alpha4.json").read_text())["resnet18"]["cub"]
    assert {"mse", "mse_untrained", "other_logit_shift", "shift_fraction"} <= set(support)
    assert support["mse_untrained"] == pytest.approx(4 ** 2 / 2, rel=1e-4)
    frame = pd.read_parquet(work / "data/attributions/gad/resnet18_cub/resnet18/saliency.parquet")
    assert sorted(frame.variant.unique()) == ["gad", "original"] and len(frame) == 2 * 2 * 4
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["gad"]["support"]["alphas"] = [0, 4, 8]
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = dvc(work, "repro", env=env)
    assert "Running stage 'gad_support@8'" in log
    assert "Running stage 'gad_support@0'" not in log
    assert "Running stage 'gad_support@4'" not in log
    assert "Running stage 'gad_train@resnet18-cub'" not in log
    assert "Running stage 'gad_evaluate'" in log


@pytest.mark.slow
def test_detection_study_outputs(project):
    work, _, log = project
    for stage in ("download@coco", "preprocess@coco", "train@ssd_coco", "attribute@ssd_coco", "evaluate@ssd_coco"):
        assert f"Running stage '{stage}'" in log
    data = json.loads((work / "metrics/data_coco.json").read_text())
    assert data["images_skipped"] == 1 and data["n_test"] == 6
    model = json.loads((work / "metrics/ssd_coco_model.json").read_text())
    assert {"test_map", "test_map_50", "val_map"} <= set(model)
    results = json.loads((work / "metrics/ssd_coco.json").read_text())
    assert results["n_boxes"] == 2
    assert set(results["methods"]) == {"lrp", "deeplift", "deeplift_gamma", "lime", "shap", "kernel_shap", "random"}
    assert {"entropy_pixels", "entropy_superpixels", "mass_entropy_pixels", "mass_entropy_superpixels",
            "flipping_auc_pixels", "flipping_auc_superpixels", "relevance_in_box"} == set(results["methods"]["lrp"])
    runtimes = json.loads((work / "metrics/ssd_coco_runtime.json").read_text())
    timing = {"runtime_ms_cold", "runtime_ms_mean", "runtime_ms_std", "n"}
    assert timing == set(runtimes["ssd_twin"]["lrp"])                      # not a sampling method
    assert timing | {"samples_mean", "stopped_early_share"} == set(runtimes["ssd_twin"]["shap"])
    assert runtimes["ssd_twin"]["shap"]["samples_mean"] > 1 and runtimes["ssd_twin"]["shap"]["stopped_early_share"] == 0
    shap = pd.read_parquet(work / "data/attributions/ssd_coco/ssd_twin/shap.parquet")
    assert (shap.samples > 1).all() and not shap.stopped_early.any()    # permutation sampling: K·P + 1, fixed
    frame = pd.read_parquet(work / "data/attributions/ssd_coco/ssd_twin/lrp.parquet")
    assert len(frame) == 2 and len(frame.box.iloc[0]) == 4 and (frame.height == 64).all()
    curves = pd.read_csv(work / "metrics/plots/ssd_coco/flipping_pixels.csv")
    assert len(curves) == 5 and "kernel_shap" in curves.columns
    assert (work / "data/reports/ssd_coco/flipping.png").stat().st_size > 1000


@pytest.mark.slow
def test_imagenet_study_outputs(project):
    work, _, log = project
    for stage in ("download@imagenet", "preprocess@imagenet", "train@imagenet", "attribute@imagenet",
                  "evaluate@imagenet"):
        assert f"Running stage '{stage}'" in log
    data = json.loads((work / "metrics/data_imagenet.json").read_text())
    assert data["images_skipped"] == 1 and data["images_kept"] == 30 and data["has_masks"]
    model = json.loads((work / "metrics/imagenet_model.json").read_text())
    assert {"inception_v3_test_accuracy", "resnet50_test_accuracy"} <= set(model)
    results = json.loads((work / "metrics/imagenet.json").read_text())
    assert set(results) == {"inception_v3", "resnet50"}
    assert set(results["inception_v3"]) == {"lime", "random"}
    assert set(results["resnet50"]) == {"shap_gradient", "shap_partition", "random"}
    assert {"IAUC", "DAUC", "IC", "DC", "AD", "IIC", "sparseness", "complexity",     # no faithfulness correlation:
            "relevance_in_object"} == set(results["resnet50"]["shap_gradient"])      # off for ImageNet by default
    runtimes = json.loads((work / "metrics/imagenet_runtime.json").read_text())
    assert runtimes["resnet50"]["shap_gradient"]["n"] == 2 and runtimes["inception_v3"]["lime"]["runtime_ms_mean"] > 0
    # null: no positive relevance in any of the 2 maps (a one-epoch model), a share of nothing
    assert all(v["relevance_in_object"] is None or 0 <= v["relevance_in_object"] <= 1
               for arch in results.values() for v in arch.values())
    assert 0 <= results["inception_v3"]["random"]["relevance_in_object"] <= 1   # noise is positive everywhere
    frame = pd.read_parquet(work / "data/attributions/imagenet/inception_v3/lime.parquet")
    assert len(frame) == 2 and (frame.height == 75).all()
    curves = pd.read_csv(work / "metrics/plots/imagenet/insertion.csv")
    assert len(curves) == 5 and "resnet50/shap_partition" in curves.columns
    assert (work / "data/attributions/imagenet/lime_top_superpixels.png").stat().st_size > 1000


# --- The report, opened in a real browser: Debian's chromium driven by Playwright.

def visit(browser, origin: str, name: str) -> dict:
    """Open ``origin/name`` and collect what the checks need: console errors, failed and
    external requests, every image's decoded width, every number cell with its source."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = {"errors": [], "failed": [], "external": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("requestfailed", lambda r: seen["failed"].append(r.url))
    page.on("request", lambda r: None if r.url.startswith(origin) else seen["external"].append(r.url))
    response = page.goto(f"{origin}/{name}", wait_until="load")
    assert response is not None and response.ok, name
    seen["images"] = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.complete, "
                                                      "e.naturalWidth])")
    seen["cells"] = page.eval_on_selector_all(
        "td[data-json]", "els => els.map(e => [e.dataset.json, e.dataset.key, e.dataset.value, "
                         "e.querySelector('.v').textContent, e.querySelector('.delta') ? "
                         "e.querySelector('.delta').textContent : null, e.classList.contains('changed')])")
    seen["links"] = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    seen["page"] = page
    return seen


@pytest.mark.slow
def test_report_in_a_real_browser(browser, project, serve):  # browser first: skip before the DAG
    from PIL import Image

    from xaibench.report.content import fmt, lookup

    work, env, log = project
    assert "Running stage 'report'" in log
    origin = serve(work / "reports")
    index = visit(browser, origin, "index.html")
    studies = [link for link in index["links"] if link.endswith(".html") and link != "index.html"]
    assert set(studies) == {f"{s}.html" for s in ("catsdogs", "senn_cifar10", "ssd_coco", "imagenet", "gad")}
    shot = np.asarray(Image.open(io.BytesIO(index["page"].screenshot(full_page=True))).convert("L"), float)
    assert shot.std() > 10 and len(np.unique(shot)) > 50, "the index screenshot is blank"
    json_files = {}
    for name in ["index.html", *sorted(set(studies))]:
        seen = index if name == "index.html" else visit(browser, origin, name)
        assert not seen["errors"], (name, seen["errors"])
        assert not seen["failed"] and not seen["external"], (name, seen["failed"], seen["external"])
        assert all(complete and width > 0 for _, complete, width in seen["images"]), (name, seen["images"])
        if name != "index.html":
            assert any("gallery_" in src for src, _, _ in seen["images"]), f"{name}: no gallery"
            assert seen["cells"], f"{name}: no number cells"
        for source, key, value, text, delta, _ in seen["cells"]:
            if source not in json_files:
                json_files[source] = json.loads((work / source).read_text())
            expected = lookup(json_files[source], json.loads(key))
            assert float(value) == expected and text == fmt(expected), (name, source, key, value, text)
            assert delta is None, "a comparison column without a base"
        seen["page"].close()
    assert {"metrics/catsdogs.json", "metrics/catsdogs_reliability.json", "metrics/gad_reliability.json",
            "metrics/ssd_coco_model.json", "metrics/imagenet_runtime.json"} <= set(json_files)
    import mlflow

    client = mlflow.tracking.MlflowClient(env["MLFLOW_TRACKING_URI"])
    run = client.search_runs([client.get_experiment_by_name("report").experiment_id])[0]
    assert "report/index.html" in [a.path for a in client.list_artifacts(run.info.run_id, "report")]


@pytest.mark.slow
def test_report_compared_with_a_base_revision(browser, project, serve):
    """The base revision holds the same metrics but DAUC of LRP 0.5 higher: every value
    gets its change, that one beyond its interval."""
    work, env, _ = project
    path = work / "metrics/catsdogs_reliability.json"
    original = path.read_bytes()
    altered = json.loads(original)
    entry = altered["intervals"]["by_metric"]["DAUC"]["lrp"]
    entry["mean"] += 0.5
    path.write_text(json.dumps(altered))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    try:
        for args in (["init", "-q"], ["add", "metrics"], ["commit", "-qm", "base"]):
            subprocess.run([*git, *args], cwd=work, check=True, capture_output=True)
    finally:
        path.write_bytes(original)
    done = subprocess.run([sys.executable, "stages/report.py", "--base", "HEAD", "--out", "reports_compare"],
                          cwd=work, env=dict(env, XAIBENCH_MLFLOW="0"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    origin = serve(work / "reports_compare")
    seen = visit(browser, origin, "catsdogs.html")
    assert not seen["errors"] and not seen["failed"]
    deltas = {(source, key): (delta, changed) for source, key, _, _, delta, changed in seen["cells"]}
    runtime = {k: d for k, d in deltas.items() if k[0] == "metrics/catsdogs_runtime.json"}
    assert runtime and all(delta is None for delta, _ in runtime.values())   # wall-clock: never compared
    key = json.dumps(["intervals", "by_metric", "DAUC", "lrp", "mean"])
    assert deltas.pop(("metrics/catsdogs_reliability.json", key)) == ("Δ -0.5", True)
    unchanged = [d for k, d in deltas.items() if k not in runtime]
    assert len(unchanged) > 50 and all(d == ("Δ ±0", False) for d in unchanged)
    bad = subprocess.run([sys.executable, "stages/report.py", "--base", "no-such-rev", "--out", "reports_bad"],
                         cwd=work, env=dict(env, XAIBENCH_MLFLOW="0"), capture_output=True, text=True)
    assert bad.returncode == 2 and "'no-such-rev' is not a git revision" in bad.stderr
    assert not (work / "reports_bad").exists()


def numeric_leaves(tree, path=()):
    """Every (key path) of a number in a JSON tree (bools are not numbers; list items count)."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return [path] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []
    return [leaf for key, value in items for leaf in numeric_leaves(value, (*path, key))]


def set_path(tree, path, value):
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


@pytest.mark.slow
def test_report_builds_every_page_whichever_metric_is_undefined(project, tmp_path, monkeypatch):
    """any metric can be null on some data or CPU. Four seeded fields of every
    metrics file of the tiny DAG at once (so each file has null and defined values side by
    side), then every localisation relevance mass of it (the field that was null on an AMD
    machine), replaced by null (figures skipped: they do not read the metrics), then every
    field null at once (figures drawn): every page is built and says "n/a" where a value is
    undefined. (Each report build costs a second or two; one file at a time, 60 of them, took
    this test 97 s of the 20-minute test budget.)"""
    from xaibench.params import load_params
    from xaibench.report import build, figures

    work = project[0]
    root = tmp_path / "workspace"
    root.mkdir()
    for name in ("data", "params.yaml"):
        (root / name).symlink_to(work / name)
    shutil.copytree(work / "metrics", root / "metrics")
    params = load_params(root / "params.yaml")
    files = {p: json.loads(p.read_text()) for p in sorted((root / "metrics").rglob("*.json"))}
    fields = [(p, leaf) for p, tree in files.items() for leaf in numeric_leaves(tree)]
    assert len(fields) > 200
    expected = build.build_report(root, tmp_path / "before", params)
    assert len(expected) == 5
    with monkeypatch.context() as patched:
        for name in ("gallery_figure", "line_chart", "runtime_bars"):   # where they are defined and used
            for module in (figures, build):
                patched.setattr(module, name, lambda *args, **kwargs: None)
        rng = np.random.default_rng(0)
        seeded, masses = {}, {}
        for p in files:
            own = [leaf for q, leaf in fields if q == p]
            seeded[p] = [own[k] for k in rng.choice(len(own), min(4, len(own)), replace=False)]
            masses[p] = [leaf for leaf in own if "means" in leaf and leaf[-1] == "relevance_mass"]
        assert any(masses.values())
        for what, nulls in (("four seeded fields of every file", seeded), ("every relevance mass", masses)):
            for path, leaves in nulls.items():
                tree = json.loads(json.dumps(files[path]))
                for leaf in leaves:
                    set_path(tree, leaf, None)
                path.write_text(json.dumps(tree))
            try:
                assert build.build_report(root, tmp_path / "out", params) == expected, what
            except Exception as error:
                named = {str(p.relative_to(root)): [list(leaf) for leaf in leaves]
                         for p, leaves in nulls.items() if leaves}
                raise AssertionError(f"{what} = null ({named}): {error!r}") from error
            for path in nulls:
                path.write_text(json.dumps(files[path]))
    for path, tree in files.items():
        tree = json.loads(json.dumps(tree))
        for leaf in numeric_leaves(tree):
            set_path(tree, leaf, None)
        path.write_text(json.dumps(tree))
    assert build.build_report(root, tmp_path / "all_null", params) == expected
    catsdogs = (tmp_path / "all_null" / "catsdogs.html").read_text()
    assert "n/a" in catsdogs and "undefined" in catsdogs
    (root / "metrics/catsdogs_reliability.json").unlink()     # a reliability stage not run yet
    assert build.build_report(root, tmp_path / "no_reliability", params) == expected
    page = (tmp_path / "no_reliability" / "catsdogs.html").read_text()
    assert "metrics/catsdogs_reliability.json is missing" in page and "dvc repro reliability@catsdogs" in page
    assert "metrics/catsdogs_reliability.json is missing" in (tmp_path / "no_reliability" / "index.html").read_text()
