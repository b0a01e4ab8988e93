"""Every synthetic twin is a function of its params and the seed: generated twice, every
file is byte-identical (the pipeline test's forced rerun starts at training and relies on
this)."""

import pytest

from xaibench.data import DATASETS

TINY = {
    "catsdogs": {"n_per_class": 4, "n_corrupt": 3, "min_size": 40, "max_size": 56},
    "cifar10": {"n_train_per_class": 5, "n_test_per_class": 2},
    "cub": {"n_per_species": 4, "image_size": 48, "test_fraction": 0.3},
    "coco": {"n_train": 8, "n_test": 4, "image_size": 64, "min_object": 12, "max_object": 28},
    "imagenet": {"n_per_class": 4, "image_size": 64},
}


def files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# one dataset per generator (catsdogs_clear is catsdogs's generator under other params)
GENERATORS = sorted({spec.generate_synthetic: name for name, spec in sorted(DATASETS.items(), reverse=True)}.values())


@pytest.mark.parametrize("name", GENERATORS)
def test_twin_is_byte_identical_when_generated_again(tmp_path, name):
    spec = DATASETS[name]
    params = spec.synthetic_params.model_validate(TINY[name])
    spec.generate_synthetic(tmp_path / "a", params, 7)
    spec.generate_synthetic(tmp_path / "b", params, 7)
    first, second = files(tmp_path / "a"), files(tmp_path / "b")
    assert first and first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
