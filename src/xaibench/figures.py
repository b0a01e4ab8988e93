"""Figures people would rather look at than read: heatmap grids and curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xaibench.atomic import atomic_path


class _Pyplot:
    """``matplotlib.pyplot`` on the Agg backend, imported on first use: every stage imports
    this module through the study kinds, most draw nothing (matplotlib costs ~0.5 s)."""

    def __getattr__(self, name: str):
        import matplotlib  # lazy

        matplotlib.use("Agg")
        import matplotlib.pyplot  # lazy

        return getattr(matplotlib.pyplot, name)


plt = _Pyplot()


def heatmap_grid(images: np.ndarray, maps_by_method: dict[str, np.ndarray], path: str | Path,
                 titles: list[str] | None = None, boxes=None) -> None:
    """Rows = images, columns = the image then one heatmap per method.

    images: [N, H, W, 3] in [0, 1]; each map [N, H, W], drawn with a symmetric
    red (positive) / blue (negative) colour scale per map. boxes: optional [N, 4]
    (x1, y1, x2, y2), drawn on every panel of the row (the explained detection).
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
            if boxes is not None:
                x1, y1, x2, y2 = boxes[i]
                ax.add_patch(plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, color="lime", lw=1))
            ax.set_xticks([])
            ax.set_yticks([])
    for j, name in enumerate(["image"] + methods):
        axes[0, j].set_title(name, fontsize=9)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def curves_figure(fractions: np.ndarray, curves: dict[str, dict[str, np.ndarray]], path: str | Path,
                  kinds=("insertion", "deletion"), title: str = "mean {kind} curve",
                  y_label: str = "target probability") -> None:
    """Mean curves per method, one panel per kind (default: insertion and deletion)."""
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 3.5), squeeze=False)
    axes = axes[0]
    for ax, kind in zip(axes, kinds):
        for method, by_kind in curves.items():
            ax.plot(fractions, by_kind[kind], label=method)
        ax.set_title(title.format(kind=kind))
        ax.set_xlabel("fraction of pixels")
        ax.set_ylabel(y_label)
        ax.set_ylim(0, 1)
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def _save(fig, path) -> None:
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def concept_prototypes_figure(images: np.ndarray, concepts: np.ndarray, path, per_concept: int = 9) -> None:
    """Rows = concepts, columns = the ``per_concept`` images with the highest activation.

    images: uint8 [N, H, W, 3]; concepts: [N, k].
    """
    k = concepts.shape[1]
    fig, axes = plt.subplots(k, per_concept, figsize=(per_concept * 0.9, k * 0.95), squeeze=False)
    for j in range(k):
        for col, index in enumerate(np.argsort(-concepts[:, j], kind="stable")[:per_concept]):
            axes[j, col].imshow(images[index])
            axes[j, col].set_xticks([])
            axes[j, col].set_yticks([])
        axes[j, 0].set_ylabel(f"concept {j}", fontsize=7)
    fig.suptitle("concept prototypes: most activating test images", fontsize=9)
    _save(fig, path)


def per_class_explanations_figure(images, reconstructions, maps_by_method: dict, relevances, titles, path) -> None:
    """One row per image: the image, SENN's reconstruction x̂ of it (what its concepts
    keep), each post-hoc method's map (``maps_by_method``: name -> [N, H, W]), and SENN's
    concept relevances as bars. images, reconstructions: [N, H, W, 3] in [0, 1] (uint8
    images are accepted)."""
    n, k = len(images), len(maps_by_method)
    fig, axes = plt.subplots(n, k + 3, figsize=(1.7 * (k + 3), 1.5 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i])
        axes[i, 0].set_ylabel(titles[i], fontsize=7)
        axes[i, 1].imshow(np.clip(reconstructions[i], 0, 1))
        for ax, maps in zip(axes[i, 2:2 + k], maps_by_method.values()):
            bound = float(np.abs(maps[i]).max()) or 1.0
            ax.imshow(maps[i], cmap="bwr", vmin=-bound, vmax=bound)
        axes[i, -1].bar(range(len(relevances[i])), relevances[i],
                        color=["tab:red" if v > 0 else "tab:blue" for v in relevances[i]])
        axes[i, -1].axhline(0, color="black", linewidth=0.5)
        for ax in axes[i, :-1]:
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, -1].tick_params(labelsize=6)
    names = {"lime": "LIME", "ig": "IG"}
    for j, name in enumerate(["image", "SENN reconstruction", *(names.get(m, m) for m in maps_by_method),
                              "SENN relevances θ_c"]):
        axes[0, j].set_title(name, fontsize=8)
    _save(fig, path)


def stability_figure(table, path) -> None:
    """Similarity between clean and noisy explanations against the noise level: every
    column of ``table`` but ``sigma`` and ``prediction_changes`` (``<method>_<measure>``)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    labels = {"jaccard": "top-k Jaccard", "ssim": "SSIM", "cosine": "relevance cosine"}
    for column in table.columns:
        if column in ("sigma", "prediction_changes"):
            continue
        method, measure = column.rsplit("_", 1)
        ax.plot(table["sigma"], table[column], marker="o",
                label=f"{ {'lime': 'LIME', 'ig': 'IG', 'senn': 'SENN'}.get(method, method)} {labels.get(measure, measure)}")
    ax.set_xlabel("noise sigma")
    ax.set_ylabel("similarity to the clean explanation")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=7)
    _save(fig, path)


def gad_hulls_figure(panels, path) -> None:
    """Per row: image, original map with its hull, GAD map with its hull (contours)."""
    n = len(panels)
    fig, axes = plt.subplots(n, 3, figsize=(6, 2 * n), squeeze=False)
    for row, (title, image, original, gad, hull_original, hull_gad) in enumerate(panels):
        axes[row, 0].imshow(image.permute(1, 2, 0).numpy())
        axes[row, 0].set_ylabel(title, fontsize=6)
        for ax, heat, hull, colour in ((axes[row, 1], original, hull_original, "lime"),
                                       (axes[row, 2], gad, hull_gad, "magenta")):
            ax.imshow(heat, cmap="inferno")
            if hull.any():
                ax.contour(hull.astype(float), levels=[0.5], colors=colour, linewidths=1)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    for j, name in enumerate(["image", "original + hull", "GAD + hull"]):
        axes[0, j].set_title(name, fontsize=8)
    _save(fig, path)


def hull_areas_figure(areas, path) -> None:
    """GAD's hull areas: one panel per cell, per method a box of the original maps' hull
    areas beside one of the GAD maps' (shares of the image, every explained image)."""
    cells = list(dict.fromkeys(areas["cell"]))
    fig, axes = plt.subplots(1, len(cells), figsize=(3.2 * len(cells), 3), squeeze=False, sharey=True)
    for ax, cell in zip(axes[0], cells):
        part = areas[areas.cell == cell]
        methods = list(dict.fromkeys(part["method"]))
        for j, method in enumerate(methods):
            rows = part[part.method == method]
            for offset, column, colour in ((-0.18, "original", "tab:red"), (0.18, "gad", "tab:green")):
                ax.boxplot(rows[column], positions=[j + offset], widths=0.3, patch_artist=True,
                           boxprops={"facecolor": colour, "alpha": 0.5}, medianprops={"color": "black"},
                           flierprops={"markersize": 2})
        ax.set_xticks(range(len(methods)), [m.replace("_", " ") for m in methods], rotation=45, ha="right",
                      fontsize=7)
        ax.set_title(cell, fontsize=8)
        ax.set_ylim(-0.02, 1.02)
    axes[0, 0].set_ylabel("hull area (share of the image)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.5) for c in ("tab:red", "tab:green")]
    axes[0, -1].legend(handles, ["original", "GAD"], fontsize=7)
    _save(fig, path)


def lime_top_superpixels_figure(rows, top_k: int, path, class_names=None) -> None:
    """LIME's figure: per image (row) and top prediction (column), the image with only
    its ``top_k`` superpixels of largest weight for that prediction, the rest dimmed.

    rows: [(image uint8 [H, W, 3], segments [H, W], labels [L], weights [K, L])];
    class_names: label -> name for the titles (else "class <label>")."""
    n_cols = max(len(r[2]) for r in rows) if rows else 1
    fig, axes = plt.subplots(max(len(rows), 1), n_cols, figsize=(1.9 * n_cols, 2 * max(len(rows), 1)), squeeze=False)
    for i, (image, segments, labels, weights) in enumerate(rows):
        for j, label in enumerate(labels):
            top = np.argsort(-weights[:, j], kind="stable")[:top_k]
            keep = np.isin(segments, top)[..., None]
            axes[i, j].imshow(np.where(keep, image, (image * 0.25).astype(image.dtype)))
            name = class_names[int(label)] if class_names is not None else f"class {int(label)}"
            axes[i, j].set_title(name, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, path)
