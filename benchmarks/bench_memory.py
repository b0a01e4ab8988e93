"""Benchmark: peak memory of `attribute` + `evaluate` against the dataset's size.

    python benchmarks/bench_memory.py [--sizes 1000 10000] [--image-size 64] [--chunk 512]
        [--methods saliency gradcam] [--backend local|ray] [--keep DIR]

For each size, a generated two-class ImageFolder tree (``data.folder.write_image_folder``)
becomes dataset ``mine`` (``source: folder``) with 80 % of it as the test split, explained
in full by a tiny timm ResNet (``timm:test_resnet``, random weights, ``train.epochs: 0``)
with gradient methods, in a temporary copy of the project whose stage scripts are run one
by one. The peak resident set size of each stage's process is its ``VmHWM`` in
``/proc/self/status``, read as it exits (not ``ru_maxrss``: Linux carries the forking
parent's high-water mark across ``exec`` into it); with ``--backend ray`` the Ray workers
are other processes and not counted. Prints a markdown table and the ratio of the largest
size's peak to the smallest's; not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("download", "preprocess", "train", "attribute", "evaluate")
MEASURED = ("attribute", "evaluate")


# runs a stage script as __main__ and writes the process's peak RSS (kB) to argv[2] at exit
PEAK_WRAPPER = """
import atexit, re, runpy, sys
script, out = sys.argv[1], sys.argv[2]
def peak():
    status = open("/proc/self/status").read()
    open(out, "w").write(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
atexit.register(peak)
sys.argv = [script] + sys.argv[3:]
runpy.run_path(script, run_name="__main__")
"""


def run_stage(work: Path, stage: str, env: dict) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of ``python stages/<stage>.py mine`` in ``work``."""
    start = time.perf_counter()
    out = work / f".peak_{stage}"
    done = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, f"stages/{stage}.py", str(out), "mine"], cwd=work,
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{stage} failed:\n{done.stderr[-3000:]}")
    return int(out.read_text()) / 1024, time.perf_counter() - start


def project(work: Path, images: Path, args) -> None:
    for name in ("stages", "src"):
        shutil.copytree(ROOT / name, work / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"] = {"mine": {
        "source": "folder", "synthetic": {}, "real": {"folder": str(images), "max_images_per_class": None},
        "preprocess": {"image_size": args.image_size, "val_fraction": 0.05, "test_fraction": 0.8}}}
    params["studies"] = {"mine": {
        "kind": "saliency", "dataset": "mine", "model": "timm:test_resnet",
        "train": {"epochs": 0, "lr": 0.001, "batch_size": 32, "rotation_degrees": 0, "horizontal_flip": False,
                  "weights": "none"},
        "attribute": {"n_images": 10 ** 9, "methods": args.methods,
                      "lime": {"num_samples": 10, "n_segments": 2, "batch_size": 10}},
        "evaluate": {"steps": 8, "deletion_fill": "mean", "insertion_blur_sigma": 5.0, "batch_size": 256}}}
    params["gad"]["datasets"] = ["mine"]
    params["reliability"]["studies"] = ["mine"]
    params["compute"].update(backend=args.backend, chunk_images=args.chunk)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--methods", nargs="+", default=["saliency", "gradcam"])
    parser.add_argument("--backend", default="local", choices=["local", "ray"])
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    from xaibench.data.folder import write_image_folder

    env = dict(os.environ, XAIBENCH_MLFLOW="0")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        base = args.keep or Path(scratch)
        for size in args.sizes:
            work, images = base / f"project_{size}", base / f"images_{size}"
            if not images.exists():
                write_image_folder(images, n_classes=2, n_per_class=size // 2, image_size=args.image_size, seed=0)
            shutil.rmtree(work, ignore_errors=True)
            project(work, images, args)
            row = {"images": size}
            for stage in STAGES:
                row[stage] = run_stage(work, stage, env)
                print(f"{size} images, {stage}: peak {row[stage][0]:.0f} MiB, {row[stage][1]:.0f} s", flush=True)
            rows.append(row)
    print(f"\n| images | explained | {' | '.join(f'{s} peak MiB (s)' for s in STAGES)} |")
    print("|---|---|" + "---|" * len(STAGES))
    for row in rows:
        cells = " | ".join(f"{row[s][0]:.0f} ({row[s][1]:.0f})" for s in STAGES)
        print(f"| {row['images']} | {int(0.8 * row['images'])} | {cells} |")
    peak = {row["images"]: max(row[s][0] for s in MEASURED) for row in rows}
    small, large = min(peak), max(peak)
    print(f"\npeak of attribute + evaluate: {peak[small]:.0f} MiB at {small} images, {peak[large]:.0f} MiB at "
          f"{large}: ratio {peak[large] / peak[small]:.2f} (target <= 1.5); chunk_images {args.chunk}, "
          f"{args.image_size} px, methods {args.methods}, backend {args.backend}")


if __name__ == "__main__":
    main()
