"""Benchmark: how fast this machine is right now, to set beside a timing of ``make repro``
(the same 2-core machine runs 1.5-2x slower in some hours). Not a test.

    python benchmarks/bench_machine_speed.py [--threads 2] [--rounds 3]

One fixed kernel: 32 Adam training steps of the cats-vs-dogs CNN (the default twin's model,
64 px, batch 32, 1024 random images), default layout, after one warm-up pass; prints the
fastest of ``--rounds`` passes in seconds. On 2026-12-04 it took 1.09-1.37 s around a
fresh ``make repro`` of 18 min 40 s.
"""

from __future__ import annotations

import argparse
import time


def kernel_seconds(threads: int, rounds: int) -> float:
    import torch

    from xaibench.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model("catsdogs_cnn", 2, 64)
    pixels, labels = torch.rand(1024, 3, 64, 64), torch.randint(0, 2, (1024,))
    optimizer = torch.optim.Adam(model.parameters())

    def one_pass():
        for start in range(0, len(pixels), 32):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(pixels[start:start + 32]), labels[start:start + 32])
            loss.backward()
            optimizer.step()

    one_pass()
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        one_pass()
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"kernel {kernel_seconds(args.threads, args.rounds):.2f} s ({args.threads} threads, best of {args.rounds})")


if __name__ == "__main__":
    main()
