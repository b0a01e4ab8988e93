"""DVC stage `attribute@<study>` (a grid's: `gad_attribute@<arch>-<dataset>`, one per cell):
explain test images -> data/attributions/<study>/ (a grid's: data/attributions/<study>/<cell>/)."""


from xaibench.tracking import stage_run, start_worker

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
    cell, dataset = study_cell(name, study, cell)
    with stage_run(name, "attribute" if cell == name else f"attribute {cell}", study.attribute.model_dump(),
                   params.datasets[dataset].source) as run, \
            atomic_outputs(attribution_dir(name, cell)):  # all methods' files, or the previous set
        study_kind(study.kind).attribute(cell, study, params, run)


if __name__ == "__main__":
    run_stage(main, "study", "[cell]")
