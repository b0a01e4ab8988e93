"""DVC stage `attribute@<study>`: explain test images -> data/attributions/<study>/ (Parquet + figures)."""


from xaibench.atomic import atomic_outputs
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import study_kind
from xaibench.tracking import stage_run


def main(name: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    study = params.study(name)
    source = params.datasets[study.dataset].source
    with stage_run(name, "attribute", study.attribute.model_dump(), source) as run, \
            atomic_outputs(f"data/attributions/{name}"):  # all methods' files, or the previous set
        study_kind(study.kind).attribute(name, study, params, run)


if __name__ == "__main__":
    run_stage(main, "study")
