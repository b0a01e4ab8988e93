"""DVC stage `attribute@<study>` (a grid's: `gad_attribute`, every cell in one stage; `python
stages/attribute.py gad <cell>` one): explain test images -> data/attributions/<study>/ (a
grid's: data/attributions/<study>/<cell>/). A grid's cells share one stage because each
cell's explanations read every cell's support models (``data/models/gad``) and the whole
``gad`` section: as four stages they reran together anyway, and paid four start-ups."""


from xaibench.tracking import PrefixedRun, stage_run, start_worker

start_worker()   # MLflow loads in a process of its own, on the other core, while this one imports torch

from xaibench.atomic import atomic_outputs
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import study_cell, study_kind
from xaibench.studies.kind import attribution_dir


def main(name: str, cell: str | None = None) -> None:
    params = load_params()
    setup_stage(params.seed)
    study = params.study(name)
    kind = study_kind(study.kind)
    cells = kind.cells(name, study)
    chosen = [study_cell(name, study, cell)[0]] if cell is not None else list(cells)   # a grid: every cell
    source = "+".join(sorted({params.datasets[cells[c]].source for c in chosen}))
    with stage_run(name, "attribute" if cell is None else f"attribute {cell}", study.attribute.model_dump(), source) \
            as run, atomic_outputs(*(attribution_dir(name, c) for c in chosen)):  # every file, or the previous set
        for part in chosen:
            kind.attribute(part, study, params, PrefixedRun(run, part) if len(chosen) > 1 else run)

if __name__ == "__main__":
    run_stage(main, "study", "[cell]")
