"""DVC stage `gad_attribute@<arch>-<dataset>`: original and GAD maps -> data/attributions/gad/<arch>_<dataset>/."""


from xaibench.atomic import atomic_outputs
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import gad as gad_study
from xaibench.tracking import stage_run


def main(arch: str, dataset: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    gad = params.gad
    with stage_run("gad", f"attribute {arch} {dataset}", gad.attribute.model_dump(),
                   params.datasets[dataset].source) as run, atomic_outputs(f"data/attributions/gad/{arch}_{dataset}"):
        gad_study.attribute(arch, dataset, gad, params.seed, run)


if __name__ == "__main__":
    run_stage(main, "architecture", "dataset")
