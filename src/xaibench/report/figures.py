"""The report's figures (matplotlib, PNG): the gallery of heatmaps, line charts of the
curve CSVs, runtime bars. Each function takes arrays or a table and writes one file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from xaibench.atomic import atomic_path  # noqa: E402

UNIT = (0, 1, 1, 0)  # every panel drawn on the unit square: maps of another size than the image still align


def _save(fig, path, dpi: int = 80) -> None:
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def gallery_figure(images: np.ndarray, maps: dict[str, np.ndarray], path, captions: list[str],
                   cue_masks: np.ndarray | None = None, boxes: np.ndarray | None = None,
                   hulls: dict[str, np.ndarray] | None = None) -> None:
    """Rows = images, columns = the image then one heatmap per method (red positive, blue
    negative, symmetric scale per map) over the image in gray.

    images [N, H, W, 3] in [0, 1]; maps: label -> [N, h, w]; captions: one per row (target,
    prediction, probability), written under the image; cue_masks [N, H', W'] outlined in
    yellow on every panel; boxes [N, 4] (x1, y1, x2, y2) in map pixels, drawn in green;
    hulls: label -> [N, h, w] bool, outlined in black (GAD's convex hulls).
    """
    n, labels = len(images), list(maps)
    fig, axes = plt.subplots(n, len(labels) + 1, figsize=(1.45 * (len(labels) + 1), 1.8 * n), squeeze=False)
    for i in range(n):
        gray = images[i].mean(-1)
        axes[i, 0].imshow(images[i], extent=UNIT)
        axes[i, 0].set_xlabel(captions[i], fontsize=6.5)
        for j, label in enumerate(labels, start=1):
            heat = maps[label][i]
            bound = float(np.abs(heat).max()) or 1.0
            axes[i, j].imshow(gray, cmap="gray", alpha=0.35, extent=UNIT)
            axes[i, j].imshow(heat, cmap="bwr", vmin=-bound, vmax=bound, alpha=0.8, extent=UNIT)
            if hulls is not None and label in hulls and hulls[label][i].any():
                _outline(axes[i, j], hulls[label][i], "black")
        for ax in axes[i]:
            if cue_masks is not None and cue_masks[i].any():
                _outline(ax, cue_masks[i], "yellow")
            if boxes is not None and boxes[i] is not None:
                h, w = next(iter(maps.values()))[i].shape
                x1, y1, x2, y2 = boxes[i]
                ax.add_patch(plt.Rectangle((x1 / w, y1 / h), (x2 - x1) / w, (y2 - y1) / h, fill=False,
                                           color="lime", lw=1))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(0, 1)
            ax.set_ylim(1, 0)
    for j, name in enumerate(["image"] + labels):
        axes[0, j].set_title("\n".join(textwrap.wrap(name.replace("_", " "), 16)), fontsize=7.5)
    fig.tight_layout(pad=0.3)
    _save(fig, path)


def _outline(ax, mask: np.ndarray, colour: str) -> None:
    h, w = mask.shape
    ys, xs = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w
    ax.contour(xs, ys, mask.astype(float), levels=[0.5], colors=colour, linewidths=0.8)


PANEL_SUFFIXES = ("_spearman", "_ssim")


def line_chart(table: pd.DataFrame, path, title: str) -> None:
    """The first column is x, every other column a line. Columns named ``<method>_spearman``
    / ``<method>_ssim`` (randomisation curves) go to one panel per suffix."""
    x, columns = table.columns[0], list(table.columns[1:])
    panels = {s: [c for c in columns if c.endswith(s)] for s in PANEL_SUFFIXES}
    panels = {s: cs for s, cs in panels.items() if cs} if all(any(c.endswith(s) for s in PANEL_SUFFIXES)
                                                            for c in columns) else {"": columns}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.2), squeeze=False)
    for ax, (suffix, names) in zip(axes[0], panels.items()):
        for name in names:
            ax.plot(table[x], table[name], marker="o" if len(table) <= 8 else None, ms=3,
                    label=name.removesuffix(suffix))
        ax.set_title(f"{title} {suffix.strip('_')}".strip(), fontsize=9)
        ax.set_xlabel(x.replace("_", " "), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=6.5, loc="best")
    fig.tight_layout()
    _save(fig, path)


def runtime_bars(runtimes: dict[str, float], path) -> None:
    """Mean milliseconds per explanation, one bar per (model/)method, log scale."""
    names = list(runtimes)
    fig, ax = plt.subplots(figsize=(5.5, 0.32 * len(names) + 0.9))
    ax.barh(names, [runtimes[n] for n in names], color="tab:blue")
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("ms per explanation (warm mean)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def _short(value) -> str:
    """A rank as the figure prints it: ``2.5``, ``n/a`` where undefined (null)."""
    return "n/a" if value is None or value != value else f"{value:g}"


def rank_figure(ranking: dict, path) -> None:
    """The metrics' disagreement: each method's rank under every metric (rows in the order
    of the median rank, 1 = best, darker = better), its median rank and bootstrap interval
    in the last column."""
    methods, metrics = ranking["order"], ranking["metrics"]
    ranks = np.array([[np.nan if ranking["methods"][m]["ranks"].get(k) is None else ranking["methods"][m]["ranks"][k]
                       for k in metrics] for m in methods], np.float64)
    fig, ax = plt.subplots(figsize=(0.55 * len(metrics) + 3.2, 0.32 * len(methods) + 1.4))
    ax.imshow(np.ma.masked_invalid(ranks), cmap="Greens_r", vmin=1, vmax=max(len(methods), 2), aspect="auto")
    for i, m in enumerate(methods):
        for j in range(len(metrics)):
            if not np.isnan(ranks[i, j]):                     # white on the dark (good) cells
                dark = ranks[i, j] <= 1 + 0.4 * (len(methods) - 1)
                ax.text(j, i, f"{ranks[i, j]:g}", ha="center", va="center", fontsize=6,
                        color="white" if dark else "black")
        low, high = ranking["methods"][m].get("interval") or [None, None]
        ax.text(len(metrics) - 0.4, i, f"{_short(ranking['methods'][m].get('median_rank'))} [{_short(low)}, "
                f"{_short(high)}]", ha="left", va="center", fontsize=7)
    ax.set_xticks(range(len(metrics)), metrics, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(methods)), methods, fontsize=7)
    ax.set_xlim(-0.5, len(metrics) + 2.5)
    ax.set_title("rank per metric (1 = best) · median rank [interval]", fontsize=8)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    _save(fig, path)


def seed_tau_figure(seeds: dict, path) -> None:
    """Which rankings survive retraining: per metric (and the median-rank aggregate, first),
    Kendall's τ between the method rankings of every pair of seeds (dots) and their mean
    (bar); τ = 1 for every pair: the same order under every retrained model."""
    rows = [("median rank", seeds["ranking"]["kendall_tau"])] + [
        (metric, part["kendall_tau"]) for metric, part in seeds["by_metric"].items() if ":" not in metric]
    fig, ax = plt.subplots(figsize=(6.4, 0.22 * len(rows) + 1.2))
    for i, (name, taus) in enumerate(rows):
        pairs = [t for t in taus["pairs"].values() if t is not None]
        if taus["mean"] is not None:
            ax.barh(i, taus["mean"], color="tab:green" if taus["min"] >= 1 - 1e-9 else "tab:orange", alpha=0.6)
        ax.plot(pairs, [i] * len(pairs), "k.", markersize=4)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(-1.05, 1.05)
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set_xlabel(f"Kendall's τ between the rankings of two seeds ({len(seeds['seeds'])} seeds; green: every pair 1)",
                  fontsize=7)
    fig.tight_layout()
    _save(fig, path)
