"""DVC stage `reliability@<study>` (a grid's: `gad_reliability`, one part per cell): how far
the study's ranking of methods can be trusted -> metrics/<study>_reliability.json with the
sections ``localisation`` (against the twin's cue masks, with ``cue_flip_rate``),
``randomisation`` (cascading model-parameter randomisation), ``controls``, ``intervals``,
``agreement``, ``fills``, ``saturation`` and the randomisation curves ->
metrics/plots/reliability/<study>/. What is checked is the study kind's ``reliability``
(:mod:`xaibench.studies.kind`), merged with the intervals by
:func:`xaibench.studies.reliability.cell_report`."""

from xaibench.tracking import stage_run, start_worker

start_worker()   # MLflow loads in a process of its own, on the other core, while this one imports torch

from xaibench.atomic import atomic_outputs, write_json
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import study_kind, study_source
from xaibench.studies.common import write_csv
from xaibench.studies.reliability import cell_report


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
    kind = study_kind(study.kind)
    cells = kind.cells(name, study)
    reports = {}
    with stage_run(name, "reliability", cfg.model_dump(), study_source(name, study, params)) as run, \
            atomic_outputs(f"metrics/plots/reliability/{name}"):
        for cell in cells:
            reports[cell], plots = cell_report(kind, name, cell, study, params, cfg, run)
            for plot, table in plots.items():
                write_csv(f"metrics/plots/reliability/{name}/{plot if cell == name else f'{plot}_{cell}'}.csv",
                          table)
    write_json(f"metrics/{name}_reliability.json", reports[name] if list(cells) == [name] else reports)


if __name__ == "__main__":
    run_stage(main, "study", errors=(KeyError,))
