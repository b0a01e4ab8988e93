"""DVC stage `gad_evaluate`: RC counts and RS (tables 1 and 2) -> metrics/gad.json + hull
figure, every image's RC and RS -> data/reports/gad/per_image_scores.csv; runtimes per
explanation -> metrics/gad_runtime.json."""

import pandas as pd

from xaibench.atomic import atomic_outputs, write_json
from xaibench.figures import gad_hulls_figure
from xaibench.metrics.runtime import mlflow_runtime_metrics, runtime_report
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import gad as gad_study
from xaibench.studies.common import write_csv
from xaibench.tracking import stage_run


def main() -> None:
    params = load_params()
    setup_stage(params.seed)
    gad = params.gad
    sources = sorted({params.datasets[d].source for d in gad.datasets})
    with stage_run("gad", "evaluate", gad.evaluate.model_dump(), "+".join(sources)) as run, \
            atomic_outputs("data/reports/gad"):
        results, panels, per_image = gad_study.evaluate(gad, params.seed, run)
        write_csv("data/reports/gad/per_image_scores.csv", pd.DataFrame(per_image))  # for gad_reliability
        figure = "data/reports/gad/hulls.png"
        gad_hulls_figure(panels, figure)
        run.log_artifact(figure)
        runtimes = runtime_report("data/attributions/gad")
        run.log_metrics(mlflow_runtime_metrics(runtimes))
    write_json("metrics/gad.json", results)
    write_json("metrics/gad_runtime.json", runtimes)


if __name__ == "__main__":
    run_stage(main)
