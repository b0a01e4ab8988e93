"""DVC stage `gad_support@<alpha>`: the support regression model of every (architecture,
dataset) cell for one alpha -> data/models/gad/support_alpha<alpha>/<arch>_<dataset>.pt."""


from xaibench.atomic import write_json
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import gad as gad_study
from xaibench.tracking import stage_run


def main(alpha: float) -> None:
    params = load_params()
    setup_stage(params.seed)
    gad = params.gad
    sources = sorted({params.datasets[d].source for d in gad.datasets})
    result = {"alpha": alpha}
    with stage_run("gad", f"support alpha {alpha:g}", {"alpha": alpha, **gad.support.model_dump(exclude={"alphas"})},
                   "+".join(sources)) as run:
        for arch in gad.architectures:
            for dataset in gad.datasets:
                result.setdefault(arch, {})[dataset] = gad_study.train_support(arch, dataset, alpha, gad,
                                                                               params.seed, run)
    write_json(f"metrics/gad/support/alpha{alpha:g}.json", result)


if __name__ == "__main__":
    run_stage(main, "alpha", convert={"alpha": float})
