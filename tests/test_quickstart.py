"""``make quickstart``'s params: one study, small, valid, the committed params.yaml untouched."""

import copy
from pathlib import Path

import pytest

from xaibench.params import ParamsError, read_yaml, validate_params
from xaibench.quickstart import SMALL, small_params, stage_commands

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw():
    return read_yaml(ROOT / "params.yaml")


def test_small_params_keep_one_study_its_dataset_and_the_overrides(raw):
    before = copy.deepcopy(raw)
    small = small_params(raw, "catsdogs")
    assert raw == before                                   # the committed tree is not changed
    params = validate_params(small)
    assert list(params.studies) == ["catsdogs"] and list(params.datasets) == ["catsdogs"]
    assert params.gad is None and params.reliability.studies == ["catsdogs"]
    assert params.reliability.randomisation.exclude == {}  # ssd_coco's exclusion left with ssd_coco
    assert params.datasets["catsdogs"].synthetic["n_per_class"] == SMALL["datasets.<dataset>.synthetic.n_per_class"]
    study = params.studies["catsdogs"]
    assert (study.train.epochs, study.attribute.n_images, study.attribute.lime.num_samples) == (8, 16, 200)
    assert study.attribute.methods == raw["studies"]["catsdogs"]["attribute"]["methods"]   # same methods
    assert params.reliability.n_resamples == 200
    # everything not overridden is the committed value
    assert study.train.lr == raw["studies"]["catsdogs"]["train"]["lr"]


def test_an_override_a_study_lacks_is_left_out(raw):
    small = small_params(raw, "senn_cifar10")             # the CIFAR twin has no n_per_class
    study = small["studies"]["senn_cifar10"]
    assert small["datasets"]["cifar10"]["synthetic"] == raw["datasets"]["cifar10"]["synthetic"]
    assert study["train"]["epochs"] == 8 and study["attribute"]["n_images"] == 16
    assert "steps" not in study["evaluate"] and study["evaluate"] == raw["studies"]["senn_cifar10"]["evaluate"]


def test_the_stages_run_from_download_to_report(raw):
    assert stage_commands(raw, "catsdogs") == [
        ["download.py", "catsdogs"], ["preprocess.py", "catsdogs"], ["train.py", "catsdogs"],
        ["attribute.py", "catsdogs"], ["evaluate.py", "catsdogs"], ["reliability.py", "catsdogs"], ["report.py"]]


def test_an_unknown_or_grid_study_is_refused_by_name(raw):
    with pytest.raises(ParamsError, match="no study 'cats'"):
        small_params(raw, "cats")
    with pytest.raises(ValueError, match="gad is a grid study"):
        small_params(raw, "gad")
