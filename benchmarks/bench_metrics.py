"""Benchmark: the metrics beyond the curves (ROAD, IROF, faithfulness correlation,
infidelity, AD/IIC) against their reference implementations and the forward-pass floor.
Prints a markdown table; not a test.

    python benchmarks/bench_metrics.py [--images 8] [--size 128] [--rounds 3] [--models catsdogs_cnn,resnet18]

Every contender gets the same model (a wrapper counting calls and images), images, maps
(seeded, without ties), targets and batch size, and the settings of the default run
(ROAD: fractions 0.1, 0.3, .., 0.9, both orders; IROF: 50 SLIC superpixels; faithfulness
correlation: 100 subsets of 224 pixels; infidelity: 32 perturbations). Each runs once cold
(reported apart), then ``--rounds`` interleaved rounds; the median is reported. Columns:
(1) ours / reference time, (2) time / floor, the floor being batched forward passes over as
many images as ours evaluated (bench_perturbation.floor_time), (3) what ours spends beyond
the floor per image explained, in ms.

The references: pytorch-grad-cam's ROAD (MoRF + LeRF per percentile) and its drop/increase
in confidence; Quantus 0.6's ROAD (MoRF only), IROF, FaithfulnessCorrelation and Infidelity
(Quantus's Infidelity removes square patches, a different perturbation, timed for scale with
``--slow-references``: 90 s for two 64 px images on 2 CPU cores, 1475 × the floor);
captum's infidelity on the same perturbations. A reference that raises on these inputs is
listed with its error.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_perturbation import Counting, build, floor_time, timed  # noqa: E402

warnings.filterwarnings("ignore")
np.trapz = getattr(np, "trapz", np.trapezoid)        # Quantus 0.6 calls np.trapz, gone in numpy 2.4
FRACTIONS = [0.1, 0.3, 0.5, 0.7, 0.9]
SEGMENTS, RUNS, SUBSET, NOISE_RUNS, SIGMA = 50, 100, 224, 32, 0.05


def scenes(count: int, size: int, device: str):
    """``count`` smooth images with noise [N, 3, S, S] in [0, 1] and random maps [N, S, S]."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = [np.clip(np.stack([xx, yy, 0.5 + 0.5 * np.sin((6 + i) * xx * yy)]) + rng.normal(0, 0.05, (3, size, size)),
                      0, 1) for i in range(count)]
    return (torch.tensor(np.stack(images), dtype=torch.float32, device=device),
            rng.random((count, size, size)).astype(np.float32))


def contenders(task: str, model: Counting, pixels, maps, targets, batch: int, device: str,
               slow_references: bool = False) -> dict:
    """{name: zero-argument callable} for one task; ``ours`` first."""
    from xaibench.explain import removal
    from xaibench.explain.lime_method import slic_segments
    from xaibench.explain.perturbation import random_subsets, subset_removal_drops
    from xaibench.metrics.faithfulness import _scores, explanation_map

    n = len(pixels)
    y = np.asarray(targets)
    x_np, a_np = pixels.cpu().numpy(), maps[:, None]
    quantus_args = dict(model=model, x_batch=x_np, y_batch=y, a_batch=a_np, device=device, batch_size=batch,
                        softmax=True)
    full = _scores(model, pixels, torch.as_tensor(targets), batch)
    out = {}
    try:
        import quantus
    except ImportError:
        quantus = None
    if task == "ROAD":
        out["ours"] = lambda: removal.road_curves(model, pixels, maps, targets, FRACTIONS, 0.01, 0, range(n), batch)

        def imputation_only():            # what ROAD costs beyond any model: the sparse solves
            from xaibench.explain.imputation import noisy_linear_imputation
            for i in range(n):
                rng = np.random.default_rng(i)
                for removed in np.concatenate(removal.road_removals(maps[i], FRACTIONS)):
                    noisy_linear_imputation(pixels[i], removed, 0.01, rng)

        out["ours: the imputations alone, no model"] = imputation_only

        def grad_cam_road():
            from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
            cam_targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets]
            for p in (90, 70, 50, 30, 10):          # removes 1 − p/100 of the pixels
                ROADMostRelevantFirst(p)(pixels, maps, cam_targets, model)
                ROADLeastRelevantFirst(100 - p)(pixels, maps, cam_targets, model)

        out["pytorch-grad-cam ROAD (MoRF+LeRF)"] = grad_cam_road
        if quantus:
            out["Quantus ROAD (MoRF only)"] = lambda: quantus.ROAD(
                percentages=[int(100 * f) for f in FRACTIONS], disable_warnings=True)(**quantus_args)
    elif task == "IROF":
        segments = np.stack([slic_segments(image, SEGMENTS) for image in pixels])
        fill = pixels.mean((2, 3), keepdim=True).expand_as(pixels)
        out["ours"] = lambda: removal.region_perturbation_curves(model, pixels, maps, targets, segments, fill, batch)
        if quantus:
            out["Quantus IROF"] = lambda: quantus.IROF(disable_warnings=True)(**quantus_args)
    elif task == "faithfulness correlation":
        subsets = np.stack([random_subsets(maps[0].size, RUNS, SUBSET, np.random.default_rng([0, i])) for i in range(n)])
        out["ours"] = lambda: subset_removal_drops(model, pixels, maps, targets, torch.zeros(3, device=device),
                                                   subsets, full, batch)
        if quantus:
            out["Quantus FaithfulnessCorrelation"] = lambda: quantus.FaithfulnessCorrelation(
                nr_runs=RUNS, subset_size=SUBSET, perturb_baseline="black", disable_warnings=True)(**quantus_args)
    elif task == "infidelity":
        out["ours"] = lambda: removal.infidelity_evidence(model, pixels, maps, targets, NOISE_RUNS, SIGMA, 0, range(n),
                                                          batch)

        def captum_infidelity():
            from captum.metrics import infidelity
            noise = torch.cat([removal.noise_perturbations(pixels.shape[1:], NOISE_RUNS, SIGMA, 0, i)
                               for i in range(n)]).to(device)
            attributions = torch.from_numpy(maps).to(device).unsqueeze(1).expand_as(pixels)
            return infidelity(model, lambda inp: (noise, inp - noise), pixels, attributions,
                              target=torch.as_tensor(targets, device=device), n_perturb_samples=NOISE_RUNS,
                              normalize=True)     # all examples in one batch: the perturbations are given whole

        out["captum infidelity (same perturbations)"] = captum_infidelity
        if quantus and slow_references:
            out["Quantus Infidelity (patches, for scale)"] = lambda: quantus.Infidelity(
                n_perturb_samples=NOISE_RUNS, disable_warnings=True)(**quantus_args)
    elif task == "AD/IIC":
        out["ours"] = lambda: _scores(model, torch.stack([explanation_map(pixels[i], maps[i]) for i in range(n)]),
                                      torch.as_tensor(targets), batch)

        def grad_cam_confidence():
            from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
            cam_targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets]
            weights = maps / maps.reshape(n, -1).max(1)[:, None, None]
            DropInConfidence()(pixels, weights[:, None], cam_targets, model)
            IncreaseInConfidence()(pixels, weights[:, None], cam_targets, model)

        out["pytorch-grad-cam drop + increase"] = grad_cam_confidence
    else:
        raise ValueError(f"unknown task {task!r}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--models", default="catsdogs_cnn,resnet18")
    parser.add_argument("--tasks", default="ROAD,IROF,faithfulness correlation,infidelity,AD/IIC")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--slow-references", action="store_true",
                        help="also Quantus's Infidelity (about 45 s per 64 px image on 2 CPU cores)")
    args = parser.parse_args()
    rows = []
    for model_name in args.models.split(","):
        model = Counting(build(model_name, args.size, args.device)).eval()
        pixels, maps = scenes(args.images, args.size, args.device)
        with torch.no_grad():
            targets = model(pixels).argmax(-1).tolist()
        for task in args.tasks.split(","):
            runs = contenders(task, model, pixels, maps, targets, args.batch, args.device, args.slow_references)
            cold, times, floors, failed = {}, {name: [] for name in runs}, [], {}
            for name, fn in runs.items():
                try:
                    cold[name] = timed(fn, model)
                except Exception as error:                    # a reference that cannot run these inputs
                    failed[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"
            for _ in range(args.rounds):
                for name, fn in runs.items():
                    if name in failed:
                        continue
                    seconds, _, images = timed(fn, model)
                    times[name].append(seconds)
                    if name == "ours":
                        floors.append(floor_time(model, pixels[0], images, args.batch))
            ours, floor = statistics.median(times["ours"]), statistics.median(floors)
            for name in runs:
                if name in failed:
                    rows.append((model_name, task, name, None, None, None, None, None, None, failed[name]))
                    continue
                median = statistics.median(times[name])
                _, calls, images = cold[name]
                rows.append((model_name, task, name, median, cold[name][0], calls, images,
                             None if name == "ours" else ours / median, median / floor,
                             f"{1000 * (ours - floor) / args.images:.1f}" if name == "ours" else ""))
    print(f"\ndevice: {args.device}, {args.images} images of {args.size} px, batch {args.batch}, {args.rounds} "
          f"interleaved rounds (median), torch threads {torch.get_num_threads()}\n")
    print("| model | metric | contender | median s | cold s | model calls | images | (1) ours/ref | (2) time/floor "
          "| (3) ours beyond floor, ms/image |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model_name, task, name, median, cold, calls, images, ratio, floor_ratio, extra in rows:
        if median is None:
            print(f"| {model_name} | {task} | {name} | raises | | | | | | {extra} |")
            continue
        print(f"| {model_name} | {task} | {name} | {median:.3f} | {cold:.3f} | {calls} | {images} | "
              f"{'' if ratio is None else f'{ratio:.3f}'} | {floor_ratio:.2f} | {extra} |")


if __name__ == "__main__":
    main()
