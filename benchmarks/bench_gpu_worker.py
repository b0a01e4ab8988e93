"""Benchmark: the Ray worker's tasks on a GPU (``compute.gpus_per_worker`` > 0), at real size.

    python benchmarks/bench_gpu_worker.py [--images 16] [--size 224] [--lime-samples 1000] [--steps 32]

What a Ray actor with a GPU share runs (``compute.ChunkWorker`` with ``gpus > 0``: the
model and each chunk's tensors moved onto the GPU), without Ray itself: ``attribute``'s
chunk task and ``evaluate``'s, for timm's ResNet-50 (random weights, ImageNet
normalisation; captum's DeepLIFT fails on torchvision's) on random images at ``--size`` px. Reports per method the time per image
on the GPU and on this machine's CPU (first ``--cpu-images`` images) and how far the GPU's
maps agree with the CPU's (Pearson r of the maps, max |difference| of the curves' scores).
Not a test: a GPU is not always there.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from xaibench.compute import ChunkWorker
from xaibench.models import NormalizedClassifier, build_model
from xaibench.explain.batch import ExplainChunk, explain_chunk
from xaibench.metrics.faithfulness import EvidenceChunk, chunk_evidence

METHODS = {"saliency": {}, "gradcam": {}, "lrp": {}, "deeplift": {}, "lime": "lime"}


def timed(worker, task, payload):
    if worker.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = worker.run(task, payload)   # what the actor runs: the payload's tensors moved to its device
    if worker.device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--cpu-images", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--lime-samples", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    args = parser.parse_args()
    torch.manual_seed(0)
    model = NormalizedClassifier(build_model("timm:resnet50", 1000, args.size), (0.485, 0.456, 0.406),
                                 (0.229, 0.224, 0.225)).eval()
    pixels = torch.rand(args.images, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    gpu, cpu = ChunkWorker(gpus=1), ChunkWorker(gpus=0)
    gpu.set_model(model)
    cpu.set_model(copy.deepcopy(model).cpu())  # its own copy: set_model moves a model in place
    print(f"GPU worker device: {gpu.device} ({torch.cuda.get_device_name(0) if gpu.device.type == 'cuda' else '-'}),"
          f" torch {torch.__version__}, {args.images} images at {args.size} px, ResNet-50")
    for worker in (gpu, cpu):
        with torch.no_grad():
            one, many = pixels[:1].to(worker.device), pixels.repeat(128 // len(pixels) + 1, 1, 1, 1)[:128].to(worker.device)
            timed(worker, lambda m, x: m(x), one)
            print(f"{worker.device.type}: one forward pass of 1 image {1000 * timed(worker, lambda m, x: m(x), one)[1]:.1f} ms,"
                  f" of 128 images {1000 * timed(worker, lambda m, x: m(x), many)[1]:.1f} ms")
    print("| method | GPU ms/image | CPU ms/image | CPU/GPU | maps: Pearson r GPU vs CPU | evaluate GPU ms/image "
          "| evaluate CPU ms/image | curves max abs diff |")
    print("|---|---|---|---|---|---|---|---|")
    for method in args.methods:
        options = METHODS[method]
        opts = {"num_samples": args.lime_samples, "n_segments": 50, "batch_size": 100} if options == "lime" else {}
        payload = lambda n: ExplainChunk(pixels[:n], np.zeros(n, np.int64), np.array([str(i) for i in range(n)]),
                                         method, "resnet50", 0, opts, "-")
        timed(gpu, explain_chunk, payload(1))                     # warm-up (cuDNN, lazy imports)
        rows_gpu, t_gpu = timed(gpu, explain_chunk, payload(args.images))
        rows_cpu, t_cpu = timed(cpu, explain_chunk, payload(args.cpu_images))
        a = rows_gpu["attribution"][: args.cpu_images].reshape(args.cpu_images, -1)
        b = rows_cpu["attribution"].reshape(args.cpu_images, -1)
        r = np.mean([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)])
        evidence = lambda rows, n: EvidenceChunk(pixels[:n], rows["attribution"][:n], torch.tensor(rows["target"][:n]),
                                                 args.steps, 5.0, model.mean.flatten(), 128)
        ev_gpu, te_gpu = timed(gpu, chunk_evidence, evidence(rows_gpu, args.images))
        ev_cpu, te_cpu = timed(cpu, chunk_evidence, evidence(rows_gpu, args.cpu_images))
        diff = float(np.abs(ev_gpu.deletion_scores[: args.cpu_images] - ev_cpu.deletion_scores).max())
        per_gpu, per_cpu = 1000 * t_gpu / args.images, 1000 * t_cpu / args.cpu_images
        print(f"| {method} | {per_gpu:.1f} | {per_cpu:.1f} | {per_cpu / per_gpu:.1f} | {r:.4f} "
              f"| {1000 * te_gpu / args.images:.1f} | {1000 * te_cpu / args.cpu_images:.1f} | {diff:.2e} |", flush=True)


if __name__ == "__main__":
    main()
