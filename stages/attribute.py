"""DVC stage `attribute@<study>`: explain test images -> data/attributions/<study>/ (Parquet + figures)."""

import sys

from xaibench.params import ParamsError, load_params
from xaibench.stage_setup import fail, setup_stage
from xaibench.studies import study_kind
from xaibench.tracking import stage_run


def main(name: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    study = params.studies[name]
    source = params.datasets[study.dataset].source
    with stage_run(name, "attribute", study.attribute.model_dump(), source) as run:
        study_kind(study.kind).attribute(name, study, params, run)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except (ParamsError, FileNotFoundError, ValueError) as error:
        fail(str(error))
