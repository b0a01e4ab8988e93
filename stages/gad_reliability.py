"""DVC stage `gad_reliability`: how far GAD's results can be trusted, per (architecture,
dataset) cell -> metrics/gad_reliability.json (intervals of RC and RS, localisation of the
original and GAD maps against the cue masks, randomisation of the gradient methods) and the randomisation curves -> metrics/plots/reliability/gad/."""

from xaibench.atomic import write_json
from xaibench.params import ParamsError, load_params
from xaibench.stage_setup import run_stage, setup_stage
from xaibench.studies import gad
from xaibench.studies.common import write_csv
from xaibench.studies.reliability import final_spearmans
from xaibench.tracking import stage_run


def main() -> None:
    params = load_params()
    setup_stage(params.seed)
    if params.reliability is None:
        raise ParamsError("params.yaml: gad_reliability needs the `reliability:` section (controls, bootstrap, "
                          "randomisation)")
    sources = sorted({params.datasets[d].source for d in params.gad.datasets})
    with stage_run("gad", "reliability", params.reliability.model_dump(), "+".join(sources)) as run:
        report, plots = gad.reliability(params.gad, params.reliability, params.seed)
        run.log_metrics(final_spearmans({cell: r["randomisation"] for cell, r in report.items()}))
        for plot, table in plots.items():
            write_csv(f"metrics/plots/reliability/gad/{plot}.csv", table)
    write_json("metrics/gad_reliability.json", report)


if __name__ == "__main__":
    run_stage(main, errors=(KeyError,))
