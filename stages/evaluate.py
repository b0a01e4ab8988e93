"""DVC stage `evaluate@<study>`: score the explanations -> metrics/<study>.json (+ curves,
figures); wall-clock runtimes per explanation -> metrics/<study>_runtime.json."""


from xaibench.atomic import atomic_outputs, write_json
from xaibench.metrics.runtime import mlflow_runtime_metrics, runtime_report
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import study_kind
from xaibench.tracking import stage_run


def main(name: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    study = params.study(name)
    source = params.datasets[study.dataset].source
    with stage_run(name, "evaluate", study.evaluate.model_dump(), source) as run, \
            atomic_outputs(f"data/reports/{name}", f"metrics/plots/{name}"):
        results = study_kind(study.kind).evaluate(name, study, params, run)
        runtimes = runtime_report(f"data/attributions/{name}")
        run.log_metrics(mlflow_runtime_metrics(runtimes))
    write_json(f"metrics/{name}.json", results)
    write_json(f"metrics/{name}_runtime.json", runtimes)


if __name__ == "__main__":
    run_stage(main, "study")
