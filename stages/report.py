"""DVC stage `report` (the last one): every study on one page, read in a browser ->
reports/index.html + reports/<study>.html and their figures. The folder is
logged to MLflow as an artifact of the report run.

    python stages/report.py [--base REV] [--out DIR]

``--base`` (default: params ``report.base``) compares every value with the metrics JSON
files at that git revision; ``make report BASE=<rev>`` calls this."""

from xaibench.tracking import stage_run, start_worker

start_worker()   # MLflow loads in a process of its own, on the other core, while this one imports torch

import argparse
import logging

from xaibench.params import ParamsError, load_params
from xaibench.process_exit import exit_process
from xaibench.report.build import build_report
from xaibench.stage_setup import fail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=None, help="git revision to compare with (default: report.base)")
    parser.add_argument("--out", default="reports", help="output folder (default: reports)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    params = load_params()
    if params.report is None:
        raise ParamsError("params.yaml: report: section missing (see docs/guide/report.md)")
    base = args.base or params.report.base
    with stage_run("report", "report", {**params.report.model_dump(), "base": base}, "") as run:
        pages = build_report(".", args.out, params, base, params.report.gallery_images)
        run.log_artifacts(args.out, "report")
    logging.getLogger("xaibench").info("report: %s/index.html (%d study pages)", args.out, len(pages))


if __name__ == "__main__":
    try:
        main()
    except (ParamsError, ValueError, FileNotFoundError) as error:
        fail(str(error))
    exit_process(0)   # the report is written: skip the interpreter's teardown
