"""``make quickstart``: a first result in a few minutes. One study (cats vs dogs by
default) on small params, in a folder of its own (``quickstart/``: the committed pipeline's
outputs, ``dvc.lock`` and ``metrics/`` are not touched), then its page of the report.

The small params are the committed ``params.yaml`` with the overrides of :data:`SMALL`
(a smaller twin, fewer epochs, fewer images explained, fewer LIME samples, ROAD fractions,
noisy copies and bootstrap resamples): the same code, stages and methods as ``make repro``,
less work. The stages run as the DVC stages do (``python stages/<stage>.py <study>``), in order, without DVC.

    python -m xaibench.quickstart [--study catsdogs] [--out quickstart]
"""

from __future__ import annotations

import argparse
import copy
import logging
import subprocess
import sys
import time
from pathlib import Path

import yaml

from xaibench.params import read_yaml, validate_params

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]

# dotted key (``<study>`` and ``<dataset>`` filled in) -> the small value; a key the study
# does not have is left out
SMALL = {
    "datasets.<dataset>.synthetic.n_per_class": 160,
    "studies.<study>.train.epochs": 8,
    "studies.<study>.attribute.n_images": 16,
    "studies.<study>.attribute.lime.num_samples": 200,
    "studies.<study>.evaluate.steps": 16,
    "studies.<study>.evaluate.road.fractions": [0.1, 0.5, 0.9],
    "reliability.input_noise.samples": 2,
    "reliability.n_resamples": 200,
    "reliability.randomisation.n_images": 4,
    "reliability.randomisation.steps": 2,
}


def _set(tree: dict, dotted: str, value) -> bool:
    """``tree[a][b][c] = value`` for ``a.b.c`` where ``a.b.c`` exists; False where it does not."""
    *path, last = dotted.split(".")
    for key in path:
        tree = tree.get(key) if isinstance(tree, dict) else None
        if tree is None:
            return False
    if not isinstance(tree, dict) or last not in tree:
        return False
    tree[last] = value
    return True


def small_params(raw: dict, study: str) -> dict:
    """The params tree of ``study`` alone on small params: its dataset, the study, the
    reliability and report sections (the study checked, nothing excluded or noise-checked for
    another), and the overrides of :data:`SMALL`; validated. Raises ParamsError for an unknown study."""
    params = validate_params(copy.deepcopy(raw))
    spec = params.study(study)
    if not hasattr(spec, "dataset"):
        raise ValueError(f"quickstart: {study} is a grid study; pick a study of `studies:` "
                         f"({', '.join(params.studies)})")
    small = copy.deepcopy(raw)
    small["datasets"] = {spec.dataset: small["datasets"][spec.dataset]}
    small["studies"] = {study: small["studies"][study]}
    small.pop("gad", None)
    if small.get("reliability"):
        small["reliability"]["studies"] = [study]
        exclude = small["reliability"]["randomisation"].get("exclude") or {}
        small["reliability"]["randomisation"]["exclude"] = {k: v for k, v in exclude.items() if k == study}
        noise = small["reliability"].get("input_noise")
        if noise and noise.get("studies"):
            noise["studies"] = [s for s in noise["studies"] if s == study]
        if small["reliability"].get("seeds"):          # retraining is make repro's (stage seeds@<study>)
            small["reliability"]["seeds"]["studies"] = {}
    for dotted, value in SMALL.items():
        _set(small, dotted.replace("<study>", study).replace("<dataset>", spec.dataset), value)
    validate_params(copy.deepcopy(small))
    return small


def stage_commands(raw: dict, study: str) -> list[list[str]]:
    """The stage scripts that take ``study`` from nothing to its report, in order."""
    dataset = raw["studies"][study]["dataset"]
    return [["download.py", dataset], ["preprocess.py", dataset], ["train.py", study], ["attribute.py", study],
            ["evaluate.py", study], ["reliability.py", study], ["report.py"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default="catsdogs", help="a study of params.yaml's studies (default: catsdogs)")
    parser.add_argument("--out", default="quickstart", help="the folder it works in (default: quickstart)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    small = small_params(read_yaml(ROOT / "params.yaml"), args.study)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.yaml").write_text("# params.yaml on small params (xaibench.quickstart)\n"
                                     + yaml.safe_dump(small, sort_keys=False))
    start = time.perf_counter()
    for script, *script_args in stage_commands(small, args.study):
        began = time.perf_counter()
        log.info("quickstart: python stages/%s %s", script, " ".join(script_args))
        done = subprocess.run([sys.executable, str(ROOT / "stages" / script), *script_args], cwd=out)
        if done.returncode != 0:
            log.error("quickstart: stages/%s failed (its message is above); %s is kept as it is", script, out)
            return done.returncode
        log.info("quickstart: %s done in %.0f s", script, time.perf_counter() - began)
    log.info("quickstart: %.0f s in all. Open %s (make repro runs every study on the default params)",
             time.perf_counter() - start, out / "reports" / f"{args.study}.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
