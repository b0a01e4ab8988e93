"""Benchmark: the batched perturbation engine against the reference libraries and the
forward-pass floor. Prints a markdown table; not a test.

    python benchmarks/bench_perturbation.py [--rounds 5] [--samples 500] [--size 64] [--device cpu]

For every (model, task) the contenders get the same model, image, segmentation (SLIC),
target, fill (black), sample count N and batch size. A wrapper counts model calls and
images. Each contender runs once cold (reported apart: lazy imports, allocator warm-up),
then ``--rounds`` interleaved rounds; the median is reported. Columns:

  (1) ours / reference time;  (2) ours / floor, the floor being batched forward passes
  over as many images as ours evaluated (in the faster memory layout, see floor_time);  (3) ours' overhead per sample in ms,
  (ours − floor) / images.

Tasks: LIME (references: ``lime``, captum ``Lime``), KernelSHAP (captum ``KernelShap``;
shap ``PartitionExplainer`` with the same evaluation budget, a different algorithm, timed
for scale), deletion curves, 32 steps, N/33 images (reference: Quantus ``PixelFlipping`` if
installed, ``pip install quantus==0.6.0``; and the per-image loop
``metrics.faithfulness.perturbation_curve``).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from torch import nn

warnings.filterwarnings("ignore")


class Counting(nn.Module):
    """Counts forward calls and images; returns logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.calls = 0
        self.images = 0

    def forward(self, x):
        self.calls += 1
        self.images += len(x)
        return self.model(x)


def build(name: str, size: int, device: str) -> nn.Module:
    from xaibench.models import NormalizedClassifier, build_model

    torch.manual_seed(0)
    net = build_model(name, 10 if name == "resnet18" else 2, size)
    return NormalizedClassifier(net, [0.5] * 3, [0.25] * 3).eval().to(device)


def scene(size: int, device: str):
    from skimage.segmentation import slic

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.stack([xx, yy, 0.5 + 0.5 * np.sin(8 * xx * yy)], -1) + rng.normal(0, 0.05, (size, size, 3))
    image = np.clip(image, 0, 1).astype(np.float32)
    segments = slic(image, n_segments=50, compactness=10, sigma=1, start_label=0)
    return torch.from_numpy(image).permute(2, 0, 1).to(device), segments


def contenders(task: str, model: Counting, image, segments, n: int, batch: int, target: int, device: str):
    """{name: zero-argument callable} for one task; ``ours`` first."""
    from xaibench.explain import perturbation as engine

    fill = torch.zeros_like(image)

    def score(px):
        return model(px).softmax(-1)[:, target]

    if task == "LIME":
        def ours():
            return engine.lime(score, image, segments, fill, n, batch, seed=0).values

        def lime_package():
            from lime import lime_image

            def classifier_fn(batch_hwc):
                with torch.no_grad():
                    x = torch.from_numpy(np.ascontiguousarray(batch_hwc)).permute(0, 3, 1, 2).float().to(device)
                    return model(x).softmax(-1).cpu().numpy()

            explainer = lime_image.LimeImageExplainer(random_state=0)
            lime_image.tqdm = lambda it, *a, **kw: it
            return explainer.explain_instance(image.permute(1, 2, 0).double().cpu().numpy(), classifier_fn,
                                              labels=(target,), top_labels=None, hide_color=0, num_samples=n,
                                              batch_size=batch, segmentation_fn=lambda _: segments, random_seed=0)

        def captum_lime():
            from captum.attr import Lime

            mask = torch.from_numpy(segments).to(device).view(1, 1, *segments.shape)
            with torch.no_grad():
                return Lime(model).attribute(image[None], baselines=0.0, target=target, feature_mask=mask,
                                             n_samples=n, perturbations_per_eval=batch)

        return {"ours": ours, "lime": lime_package, "captum Lime": captum_lime}
    if task == "KernelSHAP":
        def ours():
            return engine.kernel_shap(score, image, segments, fill, n, batch, seed=0).values

        def captum_shap():
            from captum.attr import KernelShap

            mask = torch.from_numpy(segments).to(device).view(1, 1, *segments.shape)
            with torch.no_grad():
                return KernelShap(model).attribute(image[None], baselines=0.0, target=target, feature_mask=mask,
                                                   n_samples=n, perturbations_per_eval=batch)

        def shap_partition():
            import shap

            def f(batch_hwc):
                with torch.no_grad():
                    x = torch.from_numpy(np.ascontiguousarray(batch_hwc)).permute(0, 3, 1, 2).float().to(device)
                    return model(x).softmax(-1)[:, target:target + 1].cpu().numpy()

            hwc = image.permute(1, 2, 0).cpu().numpy()
            masker = shap.maskers.Image(np.zeros_like(hwc), hwc.shape)
            explainer = shap.PartitionExplainer(f, masker)
            return explainer(hwc[None], max_evals=n, batch_size=batch, silent=True)

        return {"ours": ours, "captum KernelShap": captum_shap, "shap Partition": shap_partition}
    # deletion curves: 32 steps (Quantus needs a divisor of H·W), n // 33 images (the scene,
    # shifted) so that the curves need about n model inputs
    steps = 32
    count = max(1, n // (steps + 1))
    pixels = torch.stack([torch.roll(image, shifts=5 * i, dims=-1) for i in range(count)])
    maps = np.stack([np.random.default_rng(i).random(segments.shape).astype(np.float32) for i in range(count)])
    targets = [target] * count

    def ours():
        return engine.deletion_insertion_curves(model, pixels, maps, targets, pixels, torch.zeros_like(pixels), steps,
                                                batch)

    def per_image_loop():
        from xaibench.metrics.faithfulness import perturbation_curve

        return [perturbation_curve(model, pixels[i], maps[i], target, start=pixels[i], end=torch.zeros_like(pixels[i]),
                                   steps=steps, batch_size=batch) for i in range(count)]

    result = {"ours": ours, "per-image loop": per_image_loop}
    try:
        import quantus

        h, w = segments.shape

        def quantus_pixel_flipping():
            metric = quantus.PixelFlipping(features_in_step=h * w // steps, perturb_baseline="black",
                                           disable_warnings=True, normalise=False)
            return metric(model=model, x_batch=pixels.cpu().numpy(), y_batch=np.array(targets),
                          a_batch=maps[:, None], device=device, batch_size=batch)

        result["Quantus PixelFlipping"] = quantus_pixel_flipping
    except ImportError:
        print("(quantus not installed: `pip install quantus==0.6.0` adds its PixelFlipping as a reference)")
    return result


def timed(fn, model: Counting) -> tuple[float, int, int]:
    model.calls = model.images = 0
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, model.calls, model.images


@torch.no_grad()
def floor_time(model: Counting, image: torch.Tensor, images: int, batch: int) -> float:
    """Batched forward passes over ``images`` copies of the image, in the faster of the two
    memory layouts: a perturbed batch built by broadcasting comes out channels-last, which
    oneDNN runs up to 2x faster for small CNNs on this CPU; a contiguous NCHW floor would
    flatter every contender."""
    best = float("inf")
    for layout in (torch.contiguous_format, torch.channels_last):
        x = image[None].repeat(batch, 1, 1, 1).contiguous(memory_format=layout)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        done = 0
        while done < images:
            model(x[: min(batch, images - done)])
            done += batch
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--models", default="catsdogs_cnn,resnet18")
    parser.add_argument("--tasks", default="LIME,KernelSHAP,deletion curves")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    for model_name in args.models.split(","):
        model = Counting(build(model_name, args.size, args.device)).eval()
        image, segments = scene(args.size, args.device)
        with torch.no_grad():
            target = int(model(image[None]).argmax())
        for task in args.tasks.split(","):
            runs = contenders(task, model, image, segments, args.samples, args.batch, target, args.device)
            cold = {name: timed(fn, model) for name, fn in runs.items()}
            times = {name: [] for name in runs}
            floors = []
            for _ in range(args.rounds):
                for name, fn in runs.items():
                    seconds, calls, images = timed(fn, model)
                    times[name].append(seconds)
                    if name == "ours":
                        floors.append(floor_time(model, image, images, args.batch))
            ours = statistics.median(times["ours"])
            floor = statistics.median(floors)
            _, ours_calls, ours_images = cold["ours"]
            for name in runs:
                median = statistics.median(times[name])
                _, calls, images = cold[name]
                rows.append((model_name, task, name, median, cold[name][0], calls, images,
                             ours / median if name != "ours" else None,
                             ours / floor if name == "ours" else median / floor,
                             1000 * (ours - floor) / ours_images if name == "ours" else None))
    print(f"\ndevice: {args.device}, image {args.size} px, N = {args.samples}, batch {args.batch}, "
          f"{args.rounds} interleaved rounds (median), torch threads {torch.get_num_threads()}\n")
    print("| model | task | contender | median s | cold s | model calls | images | (1) ours/ref | "
          "(2) time/floor | (3) overhead ms/sample |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model_name, task, name, median, cold, calls, images, ratio, floor_ratio, overhead in rows:
        print(f"| {model_name} | {task} | {name} | {median:.3f} | {cold:.3f} | {calls} | {images} | "
              f"{'' if ratio is None else f'{ratio:.2f}'} | {floor_ratio:.2f} | "
              f"{'' if overhead is None else f'{overhead:.3f}'} |")


if __name__ == "__main__":
    main()
