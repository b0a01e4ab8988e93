"""DVC stage `evaluate@<study>`: score the explanations -> metrics/<study>.json (+ curves,
figures); wall-clock runtimes per explanation -> metrics/<study>_runtime.json."""

import sys

from xaibench.atomic import write_json
from xaibench.metrics.runtime import mlflow_runtime_metrics, runtime_report
from xaibench.params import ParamsError, load_params
from xaibench.stage_setup import fail, setup_stage
from xaibench.studies import study_kind
from xaibench.tracking import stage_run


def main(name: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    study = params.studies[name]
    source = params.datasets[study.dataset].source
    with stage_run(name, "evaluate", study.evaluate.model_dump(), source) as run:
        results = study_kind(study.kind).evaluate(name, study, params, run)
        runtimes = runtime_report(f"data/attributions/{name}")
        run.log_metrics(mlflow_runtime_metrics(runtimes))
    write_json(f"metrics/{name}.json", results)
    write_json(f"metrics/{name}_runtime.json", runtimes)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except (ParamsError, FileNotFoundError, ValueError) as error:
        fail(str(error))
