"""DVC stage `evaluate@<study>` (a grid's: `gad_evaluate`): score the explanations ->
metrics/<study>.json (+ curves, figures); wall-clock runtimes per explanation ->
metrics/<study>_runtime.json."""


from xaibench.tracking import stage_run, start_worker

start_worker()   # MLflow loads in a process of its own, on the other core, while this one imports torch

from xaibench.atomic import atomic_outputs, write_json
from xaibench.metrics.runtime import mlflow_runtime_metrics, runtime_report
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import study_kind, study_source


def main(name: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    study = params.study(name)
    kind = study_kind(study.kind)
    with stage_run(name, "evaluate", study.evaluate.model_dump(), study_source(name, study, params)) as run, \
            atomic_outputs(*(folder.format(name=name) for folder in kind.evaluate_folders)):
        results = kind.evaluate(name, study, params, run)
        runtimes = runtime_report(f"data/attributions/{name}")
        run.log_metrics(mlflow_runtime_metrics(runtimes))
    write_json(f"metrics/{name}.json", results)
    write_json(f"metrics/{name}_runtime.json", runtimes)


if __name__ == "__main__":
    run_stage(main, "study")
