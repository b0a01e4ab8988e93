"""Benchmark: quality against cost of LIME and KernelSHAP with fixed and adaptive sampling
. Prints a markdown table; not a test.

    python benchmarks/bench_adaptive.py [--models catsdogs_cnn resnet18] [--size 128] [--images 30]
        [--reference 10000] [--budgets 250 500 1000] [--device cpu] [--out DIR]

Models are trained here on the catsdogs twin's drawing (``draw_animal``, rendered at
``--size``; no download): the study's CNN and a torchvision ResNet-18 from scratch (their
test accuracy is printed: an explanation of an untrained model says nothing). For each of
the first ``--images`` test images: SLIC superpixels (50, compactness 10, σ 1, as the
catsdogs study), the predicted class's softmax probability explained on the normalised
input, hidden superpixels set to 0 (the training mean colour), as the ``lime`` method.

Per method (the engine's LIME and KernelSHAP) the reference is fixed sampling of
``--reference`` samples (its own seed); against it every configuration (fixed N of each
budget; adaptive with at most the max budget at each ``--agreements`` level; each unpaired
and with antithetic pairs; the other settings of the stopping
rule are params.yaml's defaults unless ``--rule`` overrides them) gets:
mean forward passes (model evaluations), wall time per image, top-k agreement (Jaccard of
the top-k sets, k = the rule's top_k) and Spearman correlation of the segment values with
the reference, each with a 95 % bootstrap interval over images (percentile, 2,000
resamples). ``--no-reference`` skips the reference and the quality columns (a timing run).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn


def render_twin(n_per_class: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 3, S, S] float32 in [0, 1] and labels [N] from the catsdogs twin's drawing."""
    from xaibench.data.catsdogs import draw_animal

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(2 * n_per_class):
        image = draw_animal(rng, i % 2, size, size)[0]
        images.append(image.transpose(2, 0, 1).astype(np.float32))
        labels.append(i % 2)
    return np.stack(images), np.array(labels)


def train(name: str, x: torch.Tensor, y: torch.Tensor, size: int, device: str, epochs: int, lr: float):
    """The model trained with Adam and horizontal flips, normalised by the training mean/std."""
    from xaibench.models import NormalizedClassifier, build_model

    torch.manual_seed(0)
    mean, std = x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).tolist()
    model = NormalizedClassifier(build_model(name, 2, size), mean, std).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        for index in torch.randperm(len(x), generator=generator).split(32):
            batch = x[index].to(device)
            flip = torch.rand(len(batch), generator=generator).to(device) < 0.5
            batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
            loss = nn.functional.cross_entropy(model(batch), y[index].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def configurations(budgets: list[int], agreements: list[float]) -> list[tuple[str, int, bool, float | None]]:
    """Fixed N per budget, then adaptive (at most the max budget) per agreement level, each
    unpaired and paired."""
    top = max(budgets)
    return ([("fixed", n, paired, None) for paired in (False, True) for n in budgets]
            + [("adaptive", top, paired, a) for paired in (False, True) for a in agreements])


def label(config) -> str:
    mode, n, paired, agreement = config
    rule = f" (agreement {agreement:g})" if mode == "adaptive" else ""
    return f"{mode} {'<= ' if mode == 'adaptive' else ''}{n}{' paired' if paired else ''}{rule}"


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    a, b = set(a.tolist()), set(b.tolist())
    return len(a & b) / len(a | b)


def interval(values: np.ndarray, rng: np.random.Generator, resamples: int = 2000) -> tuple[float, float, float]:
    """(mean, 2.5 %, 97.5 %) of the mean over images by the percentile bootstrap."""
    values = np.asarray(values, np.float64)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(1)
    return float(values.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def explain_all(model, images: np.ndarray, size: int, args, rule) -> list[dict]:
    """Per image and method: the reference values and, per configuration, values, passes, seconds."""
    from skimage.segmentation import slic
    from tqdm import tqdm

    from xaibench.explain.perturbation import kernel_shap, lime

    estimators = {"LIME": lime, "KernelSHAP": kernel_shap}
    device = next(model.parameters()).device
    records = []
    for i in tqdm(range(len(images)), desc="images", leave=False):
        pixels = torch.from_numpy(images[i]).to(device)
        segments = slic(images[i].transpose(1, 2, 0).astype(np.float64), n_segments=50, compactness=10, sigma=1,
                        start_label=0)
        x = model.normalize(pixels[None])[0]
        with torch.no_grad():
            target = int(model.net(x[None]).argmax())

        def score(batch, target=target):
            return model.net(batch).softmax(-1)[:, target]

        for method, estimator in estimators.items():
            record = {"image": i, "method": method, "segments": int(segments.max()) + 1, "runs": {}}
            if args.reference:
                record["reference"] = estimator(score, x, segments, torch.zeros_like(x), args.reference,
                                                args.batch, seed=100_000 + i).values.tolist()
            for config in configurations(args.budgets, args.agreements):
                mode, n, paired, agreement = config
                start = time.perf_counter()
                estimate = estimator(score, x, segments, torch.zeros_like(x), n, args.batch, seed=i, paired=paired,
                                     stopping=replace(rule, agreement=agreement) if mode == "adaptive" else None)
                seconds = time.perf_counter() - start
                record["runs"][label(config)] = {"values": estimate.values.tolist(), "samples": estimate.samples,
                                                 "stopped_early": estimate.stopped_early, "seconds": seconds}
            records.append(record)
    return records


def table(records: list[dict], model_name: str, args, rule) -> list[str]:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    lines = []
    for method in ("LIME", "KernelSHAP"):
        rows = [r for r in records if r["method"] == method]
        for config in configurations(args.budgets, args.agreements):
            runs = [r["runs"][label(config)] for r in rows]
            passes = interval([run["samples"] for run in runs], rng)
            ms = interval([1000 * run["seconds"] for run in runs], rng)
            early = np.mean([run["stopped_early"] for run in runs])
            cells = [model_name, method, label(config), f"{passes[0]:.0f} [{passes[1]:.0f}, {passes[2]:.0f}]",
                     f"{ms[0]:.0f} [{ms[1]:.0f}, {ms[2]:.0f}]", f"{early:.2f}"]
            if args.reference:
                k = rule.top_k
                agree = interval([jaccard(np.argsort(-np.array(run["values"]))[:k],
                                          np.argsort(-np.array(r["reference"]))[:k]) for run, r in zip(runs, rows)],
                                 rng)
                rho = interval([spearmanr(run["values"], r["reference"])[0] for run, r in zip(runs, rows)], rng)
                cells += [f"{agree[0]:.3f} [{agree[1]:.3f}, {agree[2]:.3f}]", f"{rho[0]:.3f} [{rho[1]:.3f}, {rho[2]:.3f}]"]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def per_image(records: list[dict], key: str, k: int) -> dict[str, np.ndarray]:
    """Per image of one configuration: passes, top-k Jaccard and Spearman against the reference."""
    from scipy.stats import spearmanr

    runs = [r["runs"][key] for r in records]
    return {"passes": np.array([run["samples"] for run in runs], np.float64),
            "jaccard": np.array([jaccard(np.argsort(-np.array(run["values"]))[:k], np.argsort(-np.array(r["reference"]))[:k])
                                 for run, r in zip(runs, records)]),
            "spearman": np.array([spearmanr(run["values"], r["reference"])[0] for run, r in zip(runs, records)])}


def target_table(all_records: dict, baseline: str, k: int) -> list[str]:
    """Every configuration against ``baseline`` (fixed N = the max budget) on the same images:
    passes as a share of the baseline's, and the paired differences of top-k Jaccard and
    Spearman (mean, 95 % bootstrap interval over images). The issue's target: a share <= 1/3
    with a Jaccard difference >= 0."""
    rng = np.random.default_rng(1)
    lines = ["| model | method | sampling | passes / baseline | Δ Jaccard [95 % CI] | Δ Spearman [95 % CI] | target |",
             "|---|---|---|---|---|---|---|"]
    for model_name, records in all_records.items():
        for method in ("LIME", "KernelSHAP"):
            rows = [r for r in records if r["method"] == method]
            if not rows or "reference" not in rows[0]:
                continue
            base = per_image(rows, baseline, k)
            for key in rows[0]["runs"]:
                if key == baseline:
                    continue
                other = per_image(rows, key, k)
                share = other["passes"].mean() / base["passes"].mean()
                dj = interval(other["jaccard"] - base["jaccard"], rng)
                ds = interval(other["spearman"] - base["spearman"], rng)
                verdict = "met" if share <= 1 / 3 and dj[0] >= 0 else ("passes only" if share <= 1 / 3 else "")
                lines.append(f"| {model_name} | {method} | {key} | {share:.2f} | {dj[0]:+.3f} [{dj[1]:+.3f}, {dj[2]:+.3f}] "
                             f"| {ds[0]:+.3f} [{ds[1]:+.3f}, {ds[2]:+.3f}] | {verdict} |")
    return lines


def tie_table(all_records: dict, baseline: str, adaptive: str, k: int) -> list[str]:
    """What limits the stopping rule: per image, the reference's gap between its k-th and
    (k+1)-th values over the baseline's error (RMS difference from the reference over the
    segments). Under 1, a budget of the baseline's size cannot tell the two apart, and
    no top-k set is stable; the images the rule ran to its cap are those."""
    lines = [f"| model | method | median gap/error | images with gap/error < 1 | {adaptive}: stopped early "
             "| median gap/error, stopped | median gap/error, ran to the cap |", "|---|---|---|---|---|---|---|"]
    for model_name, records in all_records.items():
        for method in ("LIME", "KernelSHAP"):
            rows = [r for r in records if r["method"] == method]
            if not rows or "reference" not in rows[0] or adaptive not in rows[0]["runs"]:
                continue
            ratio, stopped = [], []
            for r in rows:
                reference = np.array(r["reference"])
                error = np.sqrt(np.mean((np.array(r["runs"][baseline]["values"]) - reference) ** 2))
                ordered = np.sort(reference)[::-1]
                ratio.append((ordered[k - 1] - ordered[k]) / error)
                stopped.append(r["runs"][adaptive]["stopped_early"])
            ratio, stopped = np.array(ratio), np.array(stopped, bool)

            def median(values):
                return f"{np.median(values):.2f}" if len(values) else "-"

            lines.append(f"| {model_name} | {method} | {median(ratio)} | {np.mean(ratio < 1):.2f} | {stopped.mean():.2f} "
                         f"| {median(ratio[stopped])} | {median(ratio[~stopped])} |")
    return lines


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    import os

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return f"{cpu}, {torch.get_num_threads()} threads ({os.cpu_count()} cores), torch {torch.__version__}"


def main() -> None:
    from xaibench.schema import StoppingParams as StoppingRule

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["catsdogs_cnn", "resnet18"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--train-per-class", type=int, default=320)
    parser.add_argument("--epochs", type=int, nargs="+", default=[12, 12], help="per model")
    parser.add_argument("--reference", type=int, default=10_000, help="0: no reference (timing only)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--batch", type=int, default=100, help="model batch (fixed sampling; adaptive's blocks are smaller)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rule", type=json.loads, default={}, help='stopping rule overrides, e.g. {"top_k": 3}')
    parser.add_argument("--agreements", type=float, nargs="+", default=[0.95, 0.8, 0.5, 0.2],
                        help="the rule's agreement levels to run (adaptive rows)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the table and the per-image records")
    parser.add_argument("--records", type=Path, default=None,
                        help="records.json of an earlier run: print its comparison with fixed N = max budget, run nothing")
    args = parser.parse_args()
    rule = StoppingRule(**args.rule)
    baseline = label(("fixed", max(args.budgets), False, None))
    adaptive = label(("adaptive", max(args.budgets), False, max(args.agreements)))
    if args.records:
        records = json.loads(args.records.read_text())
        print("\n".join(target_table(records, baseline, rule.top_k) + [""]
                        + tie_table(records, baseline, adaptive, rule.top_k)))
        return

    images, labels = render_twin(args.train_per_class + (args.images + 1) // 2, args.size, seed=0)
    n_train = 2 * args.train_per_class
    x, y = torch.from_numpy(images[:n_train]), torch.from_numpy(labels[:n_train])
    test_x, test_y = images[n_train:n_train + args.images], labels[n_train:n_train + args.images]
    header = ["model", "method", "sampling", "forward passes", "ms / image", "stopped early"]
    if args.reference:
        header += [f"top-{rule.top_k} Jaccard vs N = {args.reference:,}", "Spearman vs reference"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes, all_records = [], {}
    for name, epochs in zip(args.models, args.epochs + args.epochs[-1:] * len(args.models)):
        start = time.perf_counter()
        model = train(name, x, y, args.size, args.device, epochs, lr=5e-4 if name == "catsdogs_cnn" else 1e-3)
        with torch.no_grad():
            predicted = model(torch.from_numpy(test_x).to(args.device)).argmax(-1).cpu().numpy()
        notes.append(f"{name}: {epochs} epochs on {n_train} twin images at {args.size} px in "
                     f"{time.perf_counter() - start:.0f} s, accuracy on the {len(test_y)} explained images "
                     f"{(predicted == test_y).mean():.3f}")
        print(notes[-1], flush=True)
        records = explain_all(model, test_x, args.size, args, rule)
        all_records[name] = records
        lines += table(records, name, args, rule)
        print("\n".join(lines[-2 * len(configurations(args.budgets, args.agreements)):]), flush=True)
        text = "\n".join([f"Machine: {machine(args.device)}. Rule: {rule}. Batch {args.batch}.", *notes, "", *lines])
        if args.out:                                   # after each model: a run cut short keeps what it did
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "table.md").write_text(text + "\n")
            (args.out / "records.json").write_text(json.dumps(all_records))
    if args.reference:
        text += "\n\n" + "\n".join(target_table(all_records, baseline, rule.top_k) + [""]
                                      + tie_table(all_records, baseline, adaptive, rule.top_k))
        if args.out:
            (args.out / "table.md").write_text(text + "\n")
    print("\n" + text)


if __name__ == "__main__":
    main()
