"""DVC stage `seeds@<study>`: rankings across retraining (``reliability.seeds``) ->
metrics/<study>_seeds.json. The study's model is retrained with k − 1 further seeds, each
explained on the same images and scored by the same metrics
(:func:`xaibench.studies.seeds.retrained_scores`); per metric the spread over the seeds
beside the image-bootstrap interval, the share of seeds in which each method keeps its rank
and Kendall's τ between seeds (:func:`xaibench.metrics.reliability.seed_stability`). A study
not in ``reliability.seeds.studies`` gets a file that says so, written before torch and
the params' schema are imported (a second, not the seven of a stage that loads them)."""

import sys
from pathlib import Path

import yaml

from xaibench.atomic import write_json


def note_path(name: str) -> str:
    return f"metrics/{name}_seeds.json"


def write_not_checked(name: str) -> None:
    write_json(note_path(name), {"checked": False, "reason": f"{name} is not in reliability.seeds.studies of "
                                 f"params.yaml: add it there ({name}: 3) to retrain its model with 3 seeds and "
                                 f"compare the rankings"})


def not_asked_for(argv: list[str]) -> str | None:
    """The study of ``stages/seeds.py <study>`` when params.yaml, read as plain YAML, has it
    among its studies but not in ``reliability.seeds.studies``; else None (the stage then
    loads and validates the params as every stage does, and a bad file is named there)."""
    try:
        raw = yaml.safe_load(Path("params.yaml").read_text()) or {}
        studies = ((raw.get("reliability") or {}).get("seeds") or {}).get("studies") or {}
        listed = raw.get("studies") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    name = argv[1] if len(argv) == 2 else None
    return name if name in listed and name not in studies else None


if __name__ == "__main__" and (unlisted := not_asked_for(sys.argv)):
    write_not_checked(unlisted)
    raise SystemExit(0)

from xaibench.tracking import stage_run, start_worker

start_worker()   # MLflow loads in a process of its own, on the other core, while this one imports torch

from xaibench.metrics.registry import reported
from xaibench.metrics.reliability import seed_stability
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import study_kind
from xaibench.studies.seeds import retrained_scores


def main(name: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    cfg = params.reliability
    study = params.study(name)
    path = note_path(name)
    if cfg is None or name not in cfg.seeds.studies:
        write_not_checked(name)
        return
    k = cfg.seeds.studies[name]
    with stage_run(name, "seeds", {"k": k, **cfg.model_dump(include={"n_resamples", "level"})},
                   params.datasets[study.dataset].source) as run:
        scores, facts = retrained_scores(name, study, params, study_kind(study.kind), k, cfg.seeds.n_images, run)
        report = seed_stability(scores, cfg.n_resamples, cfg.level, params.seed)
        for metric, part in report["by_metric"].items():
            if part["kendall_tau"]["mean"] is not None:
                run.log_metrics({f"seed_tau.{metric}": part["kendall_tau"]["mean"]})
    importance = {str(s): v for s, v in facts["cue_importance"].items() if v is not None}
    write_json(path, {"checked": True, "k": k, "n_images": cfg.seeds.n_images, **report,
                      "models": {str(s): {m: reported(v) for m, v in q.items()} for s, q in facts["models"].items()},
                      **({"cue_importance": importance} if importance else {})})


if __name__ == "__main__":
    run_stage(main, "study")
