"""DVC stage `train@<study>` (a grid's: `gad_train@<arch>-<dataset>`, one per cell): train
the model of the study or of one of its cells -> data/models/... + metrics/<study>_model.json
(a grid's: metrics/<study>/<cell>_model.json)."""

from xaibench.tracking import stage_run, start_worker

start_worker()   # MLflow loads in a process of its own, on the other core, while this one imports torch

from xaibench.atomic import write_json
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import study_cell, study_kind
from xaibench.studies.classification import model_sections
from xaibench.studies.kind import model_json


def main(name: str, cell: str | None = None) -> None:
    params = load_params()
    setup_stage(params.seed)
    study = params.study(name)
    cell, dataset = study_cell(name, study, cell)
    models = model_sections(study)
    with stage_run(name, "train" if cell == name else f"train {cell}", {**models, **study.train.model_dump()},
                   params.datasets[dataset].source) as run:
        result = study_kind(study.kind).train(cell, study, params, run)
    write_json(model_json(name, cell), {**models, **result})


if __name__ == "__main__":
    run_stage(main, "study", "[cell]")
