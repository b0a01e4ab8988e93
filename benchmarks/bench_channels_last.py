"""Benchmark: the memory layout and allocator settings of CPU forward passes. Prints a
markdown table of images per second and ratios; not a test.

    python benchmarks/bench_channels_last.py [--rounds 5] [--images 2048]

For each model of the default twins (cats-vs-dogs CNN at 64 px, ResNet18 at 48 px, ResNet50
at 80 px) and batch size, the no-grad forward pass on the default layout ("plain") and on a
channels-last input (what ``NormalizedClassifier`` does in no-grad passes), each in a fresh
process with and without :func:`xaibench.stage_setup.keep_freed_memory` (glibc's malloc
keeps freed blocks; every stage calls it). Median of ``--rounds`` rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

MODELS = {"catsdogs_cnn@64": 64, "resnet18@48": 48, "resnet50@80": 80}


def rates(keep: bool, rounds: int, images: int) -> dict:
    import torch
    import torchvision

    from xaibench.models.cnn import catsdogs_cnn
    from xaibench.stage_setup import keep_freed_memory

    if keep:
        keep_freed_memory()
    torch.set_num_threads(2)
    builders = {"catsdogs_cnn@64": lambda: catsdogs_cnn(2, 64), "resnet18@48": lambda: torchvision.models.resnet18(num_classes=2),
                "resnet50@80": lambda: torchvision.models.resnet50(num_classes=5)}
    out = {}
    for name, size in MODELS.items():
        model = builders[name]().eval()
        for batch in (32, 128):
            for layout in ("plain", "channels_last"):
                x = torch.rand(batch, 3, size, size)
                if layout == "channels_last":
                    x = x.contiguous(memory_format=torch.channels_last)
                n = max(1, images // batch // (8 if "resnet" in name else 1))
                times = []
                with torch.no_grad():
                    model(x)
                    for _ in range(rounds):
                        start = time.perf_counter()
                        for _ in range(n):
                            model(x)
                        times.append(n * batch / (time.perf_counter() - start))
                out[f"{name} {batch} {layout}"] = statistics.median(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--worker", choices=["keep", "default"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(rates(args.worker == "keep", args.rounds, args.images)))
        return
    runs = {}
    for worker in ("default", "keep"):
        done = subprocess.run([sys.executable, __file__, "--worker", worker, "--rounds", str(args.rounds),
                               "--images", str(args.images)], capture_output=True, text=True, check=True)
        runs[worker] = json.loads(done.stdout.strip().splitlines()[-1])
    print("| model, batch | plain | channels-last | plain + keep | channels-last + keep | best / plain |")
    print("|---|---|---|---|---|---|")
    for key in runs["default"]:
        if not key.endswith(" plain"):
            continue
        base = key[: -len(" plain")]
        cells = [runs["default"][key], runs["default"][base + " channels_last"], runs["keep"][key],
                 runs["keep"][base + " channels_last"]]
        print(f"| {base} | " + " | ".join(f"{c:.0f}/s" for c in cells) + f" | {max(cells) / cells[0]:.2f} |")


if __name__ == "__main__":
    main()
