"""DVC stage `preprocess@<dataset>`: decode (skip corrupt), resize, split -> data/prepared/<dataset>;
cue masks and swapped-cue renderings of the test split -> data/cues/<dataset>."""

from xaibench.tracking import stage_run, start_worker

start_worker()   # MLflow loads in a process of its own, on the other core, while this one imports torch

import logging

import numpy as np

from xaibench.atomic import atomic_outputs, write_json
from xaibench.data import dataset_spec
from xaibench.data.images import load_split, save_cues
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage

log = logging.getLogger("xaibench.preprocess")


def prepare_cues(name: str, dataset) -> dict:
    """data/cues/<name>: what the reliability stage checks explanations against (the
    dataset's ``prepare_cues``; a dataset without one, or a real source without cue
    masks, gets a cues.json that says so)."""
    spec = dataset_spec(name, dataset.source)
    if spec.prepare_cues is None:
        return save_cues(f"data/cues/{name}", np.array(load_split(f"data/prepared/{name}", "test", mmap=True)["ids"]),
                         note="no cue masks for this dataset")
    return spec.prepare_cues(f"data/raw/{name}", f"data/prepared/{name}", f"data/cues/{name}", dataset)


def main(name: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    dataset = params.dataset(name)
    with stage_run(f"dataset-{name}", "preprocess", dataset.preprocess.model_dump(), dataset.source) as run, \
            atomic_outputs(f"data/prepared/{name}", f"data/cues/{name}"):
        report = dataset_spec(name, dataset.source).prepare(f"data/raw/{name}", f"data/prepared/{name}", dataset, params.seed)
        report["cues"] = prepare_cues(name, dataset)
        log.info("%s: kept %d images, skipped %d undecodable", name, report["images_kept"], report["images_skipped"])
        run.log_metrics({k: v for k, v in report.items() if isinstance(v, (int, float))})
    write_json(f"metrics/data_{name}.json", {"source": dataset.source, **report})


if __name__ == "__main__":
    run_stage(main, "dataset")
