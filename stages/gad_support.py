"""DVC stage `gad_support@<arch>-<dataset>-<alpha>`: one support regression model per alpha."""

import sys

from xaibench.atomic import write_json
from xaibench.params import ParamsError, load_params
from xaibench.stage_setup import fail, setup_stage
from xaibench.studies import gad as gad_study
from xaibench.tracking import stage_run


def main(arch: str, dataset: str, alpha: float) -> None:
    params = load_params()
    setup_stage(params.seed)
    gad = params.gad
    with stage_run("gad", f"support {arch} {dataset} alpha {alpha:g}",
                   {"arch": arch, "dataset": dataset, "alpha": alpha, **gad.support.model_dump(exclude={"alphas"})},
                   params.datasets[dataset].source) as run:
        result = gad_study.train_support(arch, dataset, alpha, gad, params.seed, run)
    write_json(f"metrics/gad/support/{arch}_{dataset}_alpha{alpha:g}.json", result)


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
    except (ParamsError, FileNotFoundError) as error:
        fail(str(error))
