"""Benchmark: two processes sharing the CPU, as `make test`'s two pytest-xdist workers do.
Prints a markdown table of seconds per process and the slowdown against one process
alone; not a test.

    python benchmarks/bench_oversubscription.py [--steps 30] [--threads 2]

Each process runs ``--steps`` training steps (forward + backward) of ResNet18 at 64 px on a
batch of 32. Three runs: one process with ``--threads`` torch threads alone; two such
processes at once (each with as many threads as the machine has cores: oversubscribed); two
processes of one thread each. On the 2-core development machine (AMD EPYC, 2026-12-02):
alone 2 threads 9.0 s, two x 2 threads 39.5 s each (4.4x), two x 1 thread 16 s each
(1.8x; one thread alone 15.3 s), which is why `make test` gives each worker one thread.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

STEP = """
import sys, time, torch
torch.set_num_threads({threads})
from xaibench.models import build_model
model = build_model("resnet18", 2, 64)
x = torch.rand(32, 3, 64, 64)
start = time.perf_counter()
for _ in range({steps}):
    model.zero_grad()
    model(x).sum().backward()
print(time.perf_counter() - start)
"""


def run_together(n_processes: int, threads: int, steps: int) -> list[float]:
    """Seconds each of ``n_processes`` simultaneous processes took for its steps."""
    code = STEP.format(threads=threads, steps=steps)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(n_processes)]
    return [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2, help="threads of the oversubscribed runs")
    args = parser.parse_args()
    started = time.perf_counter()
    alone = run_together(1, args.threads, args.steps)[0]
    rows = [("1 process", args.threads, [alone]),
            ("2 processes", args.threads, run_together(2, args.threads, args.steps)),
            ("2 processes", 1, run_together(2, 1, args.steps)),
            ("1 process", 1, run_together(1, 1, args.steps))]
    print(f"| run | threads each | seconds per process | slowdown vs 1 process x {args.threads} threads |")
    print("|---|---|---|---|")
    for name, threads, seconds in rows:
        mean = sum(seconds) / len(seconds)
        print(f"| {name} | {threads} | {', '.join(f'{s:.1f}' for s in seconds)} | {mean / alone:.2f}x |")
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
