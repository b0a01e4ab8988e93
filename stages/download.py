"""DVC stage `download@<dataset>`: real archive (verified, resumable) or synthetic twin -> data/raw/<dataset>."""


from xaibench.tracking import stage_run, start_worker

start_worker()   # MLflow loads in a process of its own, on the other core, while this one imports torch

from xaibench.data.download import ChecksumError, UnpinnedChecksumError
from xaibench.data.sources import materialize
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage


def main(name: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    dataset = params.dataset(name)
    with stage_run(f"dataset-{name}", "download", dataset.model_dump(mode="json"), dataset.source) as run:
        report = materialize(name, dataset, params.seed, f"data/raw/{name}", "data/downloads")
        run.log_metrics({k: v for k, v in report.items() if isinstance(v, (int, float))})


if __name__ == "__main__":
    run_stage(main, "dataset", errors=(ChecksumError, UnpinnedChecksumError))
