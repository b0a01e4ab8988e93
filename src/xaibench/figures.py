"""Figures people would rather look at than read: heatmap grids and curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from xaibench.atomic import atomic_path  # noqa: E402


def heatmap_grid(images: np.ndarray, maps_by_method: dict[str, np.ndarray], path: str | Path,
                 titles: list[str] | None = None) -> None:
    """Rows = images, columns = the image then one heatmap per method.

    images: [N, H, W, 3] in [0, 1]; each map [N, H, W], drawn with a symmetric
    red (positive) / blue (negative) colour scale per map.
    """
    n = len(images)
    methods = list(maps_by_method)
    fig, axes = plt.subplots(n, len(methods) + 1, figsize=(1.8 * (len(methods) + 1), 1.8 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i])
        axes[i, 0].set_ylabel(titles[i] if titles else "", fontsize=7)
        for j, method in enumerate(methods, start=1):
            heat = maps_by_method[method][i]
            bound = float(np.abs(heat).max()) or 1.0
            axes[i, j].imshow(images[i].mean(-1), cmap="gray", alpha=0.35)
            axes[i, j].imshow(heat, cmap="bwr", vmin=-bound, vmax=bound, alpha=0.8)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    for j, name in enumerate(["image"] + methods):
        axes[0, j].set_title(name, fontsize=9)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def curves_figure(fractions: np.ndarray, curves: dict[str, dict[str, np.ndarray]], path: str | Path) -> None:
    """Mean insertion and deletion curves per method (two panels)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, kind in zip(axes, ("insertion", "deletion")):
        for method, by_kind in curves.items():
            ax.plot(fractions, by_kind[kind], label=method)
        ax.set_title(f"mean {kind} curve")
        ax.set_xlabel("fraction of pixels")
        ax.set_ylabel("target probability")
        ax.set_ylim(0, 1)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
