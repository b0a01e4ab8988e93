"""DVC stage `reliability@<study>`: how far the study's ranking of methods can be trusted
-> metrics/<study>_reliability.json (paired bootstrap intervals, rank stability, metric
agreement, separation from the controls; issue 13, parts 3-4, saliency studies so far)."""

import sys

import pandas as pd

from xaibench.atomic import write_json
from xaibench.metrics.reliability import reliability_report
from xaibench.params import ParamsError, load_params
from xaibench.stage_setup import fail, setup_stage
from xaibench.tracking import stage_run


def main(name: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    cfg = params.reliability
    study = params.studies[name]
    scores = pd.read_csv(f"data/reports/{name}/per_image_scores.csv", dtype={"image_id": str})
    with stage_run(name, "reliability", cfg.model_dump(), params.datasets[study.dataset].source) as run:
        report = reliability_report(scores, cfg.controls, cfg.n_resamples, cfg.level, params.seed)
        run.log_metrics({f"rank_stability.{metric}.{method}": share
                         for metric, shares in report["intervals"]["rank_stability"].items()
                         for method, share in shares.items()})
    write_json(f"metrics/{name}_reliability.json", report)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except (ParamsError, FileNotFoundError, KeyError) as error:
        fail(str(error))
