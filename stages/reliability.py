"""DVC stage `reliability@<study>`: how far the study's ranking of methods can be trusted
-> metrics/<study>_reliability.json with the sections ``localisation`` (against the
twin's cue masks, with ``cue_flip_rate``), ``randomisation`` (cascading model-parameter
randomisation), ``controls``, ``intervals``, ``agreement``, ``fills``, ``saturation``
and the randomisation curves -> metrics/plots/reliability/<study>/.
What is checked is the study kind's ``reliability`` (:mod:`xaibench.studies.kind`)."""

from pathlib import Path

import pandas as pd

from xaibench.atomic import atomic_outputs, write_json
from xaibench.metrics.reliability import reliability_report
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import study_kind
from xaibench.studies.common import write_csv
from xaibench.studies.reliability import final_spearmans
from xaibench.tracking import stage_run


def fill_agreement(agreement: dict) -> dict:
    """Kendall's tau between the DAUC rankings of every pair of deletion fills."""
    return {pair: tau for pair, tau in agreement.items()
            if all(name.startswith("DAUC:") for name in pair.split("|"))}


def main(name: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    cfg = params.reliability
    study = params.study(name)
    if cfg is None or name not in cfg.studies:   # dvc.yaml runs the stage for every study
        with atomic_outputs(f"metrics/plots/reliability/{name}"):
            write_json(f"metrics/{name}_reliability.json", {"checked": False, "reason": f"{name} is not in "
                       f"reliability.studies of params.yaml: add it there for intervals, controls and the "
                       f"reliability verdict"})
        return
    with stage_run(name, "reliability", cfg.model_dump(), params.datasets[study.dataset].source) as run, \
            atomic_outputs(f"metrics/plots/reliability/{name}"):
        rows, sections, plots = study_kind(study.kind).reliability(name, study, params, cfg, run)
        run.log_metrics(final_spearmans(sections["randomisation"]))
        stored = Path(f"data/reports/{name}/per_image_scores.csv")  # evaluate's per-image scores, where it writes them
        scores = pd.concat(([pd.read_csv(stored, dtype={"image_id": str})] if stored.exists() else [])
                           + [pd.DataFrame(rows)], ignore_index=True)
        report = reliability_report(scores, cfg.controls, cfg.n_resamples, cfg.level, params.seed)
        if "fills" in sections:
            sections["fills"]["agreement"] = fill_agreement(report["agreement"])
        run.log_metrics({f"rank_stability.{metric}.{method}": share
                         for metric, shares in report["intervals"]["rank_stability"].items()
                         for method, share in shares.items()})
        for plot, table in plots.items():
            write_csv(f"metrics/plots/reliability/{name}/{plot}.csv", table)
    order = ("localisation", "randomisation", "controls", "intervals", "agreement", "fills", "saturation")
    merged = {**report, **sections}
    write_json(f"metrics/{name}_reliability.json",
               {**{k: merged[k] for k in ("n_images", "n_resamples", "level", "direction")},
                **{k: merged[k] for k in order if k in merged}})


if __name__ == "__main__":
    run_stage(main, "study", errors=(KeyError,))
