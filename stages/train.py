"""DVC stage `train@<study>`: train the study's model -> data/models/<study>/ + metrics/<study>_model.json."""

from xaibench.atomic import write_json
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import study_kind
from xaibench.studies.classification import model_sections
from xaibench.tracking import stage_run


def main(name: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    study = params.study(name)
    models = model_sections(study)
    with stage_run(name, "train", {**models, **study.train.model_dump()},
                   params.datasets[study.dataset].source) as run:
        result = study_kind(study.kind).train(name, study, params, run)
    write_json(f"metrics/{name}_model.json", {**models, **result})


if __name__ == "__main__":
    run_stage(main, "study")
