"""DVC stage `gad_train@<arch>-<dataset>`: the GAD study's classifier -> data/models/gad/original/<arch>_<dataset>.pt."""


from xaibench.atomic import write_json
from xaibench.params import load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import gad as gad_study
from xaibench.tracking import stage_run


def main(arch: str, dataset: str) -> None:
    params = load_params()
    setup_stage(params.seed)
    gad = params.gad
    with stage_run("gad", f"train {arch} {dataset}", {"arch": arch, "dataset": dataset, **gad.train.model_dump()},
                   params.datasets[dataset].source) as run:
        result = gad_study.train_original(arch, dataset, gad, params.seed, run)
    write_json(f"metrics/gad/{arch}_{dataset}_model.json", result)


if __name__ == "__main__":
    run_stage(main, "architecture", "dataset")
