"""Model-parameter randomisation test (Adebayo et al. 2018, "Sanity checks for saliency
maps", NeurIPS, sec. 3.1 "cascading randomization"): re-initialise the model's layers
from the output towards the input, one step after the other, explain the same images
(and the same target class) with every randomised model, and compare each map with the
trained model's map. A method whose maps stay similar once the whole network is random
does not explain the model.

Similarity per image, as in the paper (fig. 2-4): the Spearman rank correlation of the
maps' absolute values, and the SSIM of the absolute maps each scaled to [0, 1] by its
maximum (scikit-image ``structural_similarity``, data range 1). A map that is constant
(e.g. all zero on a dead random network) has no rank correlation: it counts as 0.

Two scores beside the curves, per image (declared and computed in
:mod:`xaibench.metrics.randomisation`):

* eMPRT (Hedström, Bommer, Wickstrøm, Samek, Lapuschkin & Höhne 2023, "Sanity checks
  revisited: an exploration to repair the model parameter randomisation test", XAI in
  Action workshop, NeurIPS, sec. 4): the complexity of the map of the fully randomised model
  relative to the trained model's, ``H(ê)/H(e)``, with H the discrete entropy of the map's
  values over ``n_bins`` equal-width bins (Quantus's ``discrete_entropy``): a map that
  explains the model turns to noise when the model does (> 1); a map that does not keeps
  its complexity (1). Higher is better.
* the random-logit test (Sixt, Granz & Landgraf 2020, "When explanations lie: why many
  modified BP attributions fail", ICML, sec. 5): the SSIM of the *signed* maps (each over its
  largest magnitude) of the explained class and of a random other class, drawn per image; a
  map that does not depend on the class scores 1. Signed, because on two classes a method
  that explains the probability gives the other class the negative map, which |map| could
  not tell from the same map. Lower is better.

Cascade steps: the network's parametrised leaf modules (convolutions, linear and
normalisation layers), in registration order, which is the forward order for the
networks here, are split into ``n_steps`` contiguous groups, last group first; step k
randomises groups 1..k, so the last step has every layer random. On a deep network a
step is a block or a stage, not a layer. Re-initialisation is each module's
own ``reset_parameters`` (PyTorch's default initialisation; BatchNorm: weight 1, bias
0, running statistics reset), seeded per step.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
from torch import nn

from xaibench.compute import map_chunks
from xaibench.metrics.randomisation import efficient_mprt


def parametrised_leaves(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every module without children that owns parameters, in registration order."""
    return [(name, m) for name, m in net.named_modules()
            if not list(m.children()) and list(m.parameters(recurse=False))]


def cascade_groups(net: nn.Module, n_steps: int) -> list[list[tuple[str, nn.Module]]]:
    """The leaves split into ``min(n_steps, #leaves)`` contiguous groups, output side first."""
    leaves = parametrised_leaves(net)[::-1]
    if not leaves:
        raise ValueError("the network has no parametrised layer to randomise")
    bounds = np.round(np.linspace(0, len(leaves), min(n_steps, len(leaves)) + 1)).astype(int)
    return [leaves[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def randomise_(modules: list[tuple[str, nn.Module]], seed: int) -> None:
    """Re-initialise ``modules`` in place (``reset_parameters``; a module without one gets
    N(0, 0.01²) weights), from a seeded generator."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for _, module in modules:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            else:
                for parameter in module.parameters(recurse=False):
                    parameter.normal_(0, 0.01)


def spearman_abs(original: np.ndarray, other: np.ndarray, regions: np.ndarray | None = None) -> np.ndarray:
    """Per image, Spearman's rho between |original| and |other| ([N, ...] each), over the
    pixels of ``regions`` (bool, same shape) where given; 0 where a map is constant."""
    from scipy.stats import spearmanr  # lazy: ~0.5 s at import, which every stage paid
    out = np.zeros(len(original))
    for i, (a, b) in enumerate(zip(original, other)):
        keep = np.ones(np.size(a), bool) if regions is None else np.ravel(regions[i])
        a, b = np.abs(np.ravel(a))[keep], np.abs(np.ravel(b))[keep]
        if np.ptp(a) > 0 and np.ptp(b) > 0:
            out[i] = spearmanr(a, b).statistic
    return out


def ssim_abs(original: np.ndarray, other: np.ndarray, absolute: bool = True) -> np.ndarray:
    """Per image, SSIM of |original| and |other| each divided by its maximum ([N, H, W] each,
    data range 1); ``absolute=False``: of the signed maps, each divided by its largest
    magnitude and mapped to [0, 1] as ``(x + 1) / 2`` (0 relevance = mid grey, so that a map
    and its negative are opposite images, SSIM near −1, where SSIM on raw signed values
    multiplies two negative terms into +1)."""
    from skimage.metrics import structural_similarity  # lazy: scikit-image

    def scaled(x):
        x = np.asarray(x, np.float64)
        x = np.abs(x) if absolute else x
        peak = np.abs(x).max()
        x = x / peak if peak > 0 else x
        return x if absolute else (x + 1) / 2

    out = np.zeros(len(original))
    for i, (a, b) in enumerate(zip(original, other)):
        a, b = scaled(a), scaled(b)
        side = min(7, *a.shape)
        window = side - (side + 1) % 2 if side >= 3 else None   # the largest odd window <= 7 that fits
        out[i] = structural_similarity(a, b, data_range=1.0, win_size=window) if window else float(np.allclose(a, b))
    return out


RANDOM_LOGIT_STREAM = 0x10617


def random_other_classes(targets, n_classes: int, seed: int, image_indices) -> torch.Tensor:
    """Per image, a class drawn uniformly from the ``n_classes − 1`` that are not its target,
    from ``default_rng([seed, image_index, RANDOM_LOGIT_STREAM])`` (the other class of a binary
    task)."""
    if n_classes < 2:
        raise ValueError("the random-logit test needs a model with two or more classes")
    out = []
    for target, index in zip(torch.as_tensor(targets).tolist(), image_indices):
        draw = int(np.random.default_rng([seed, int(index), RANDOM_LOGIT_STREAM]).integers(n_classes - 1))
        out.append(draw + (draw >= target))
    return torch.tensor(out, dtype=torch.long)


SENSITIVITY_STREAM, SMOOTH_STREAM = 0x5E45, 0x5A0F


def noisy_copies(pixels: torch.Tensor, samples: int, kind: str, scale: float, seed: int, stream: int) -> torch.Tensor:
    """``samples`` noisy copies of each image [N, C, H, W] -> [N·samples, C, H, W], image-major
    (captum's repeat_interleave order): ``uniform`` adds U(−scale, scale) per value (captum's
    sensitivity_max), ``gaussian`` N(0, (scale·(max − min))²), the image's own value range
    (Quantus's SmoothMPRT). Image i draws from ``default_rng([seed, i, stream])``."""
    out = []
    for index, image in enumerate(pixels):
        rng = np.random.default_rng([seed, index, stream])
        shape = (samples, *image.shape)
        if kind == "uniform":
            noise = rng.uniform(-scale, scale, shape)
        elif kind == "gaussian":
            noise = rng.normal(0.0, scale * float(image.max() - image.min()), shape)
        else:
            raise ValueError(f"noise {kind!r}: uniform | gaussian")
        out.append(image.unsqueeze(0) + torch.from_numpy(noise).to(image.dtype).to(image.device))
    return torch.cat(out)


def _net(model):
    return model.net


def randomised_copy(model: nn.Module, k: int | None, n_steps: int, seed: int, net_of: Callable = None) -> nn.Module:
    """A copy of ``model`` at cascade step ``k`` (None: the last, every layer random), built
    from scratch: groups 1..k randomised with their seeds, the parameters the sequential
    cascade reaches."""
    randomised = copy.deepcopy(model).eval()
    groups = cascade_groups((net_of or _net)(randomised), n_steps)
    for j in range(len(groups) if k is None else k):
        randomise_(groups[j], seed * 1000 + j + 1)
    return randomised


def _step_maps(model: nn.Module, payload: dict) -> np.ndarray:
    """Cascade step ``k`` built from scratch (:func:`randomised_copy`) and explained: a task for Ray."""
    randomised = randomised_copy(model, payload["k"], payload["n_steps"], payload["seed"], payload["net_of"])
    return np.asarray(payload["explain"](randomised))


def randomisation_cascade(model: nn.Module, explain: Callable, n_steps: int, seed: int,
                          net_of: Callable = _net, regions: np.ndarray | None = None, compute=None) -> list[dict]:
    """Run the cascade: ``explain(model) -> maps [N, H, W]`` is called on the trained model
    and on each step's randomised copy (``model`` itself is left untouched). Returns one
    row per step (step 0 = the trained model against itself): the layers randomised so
    far (first and last name of the step's group), the number of layers random, and the
    per-image Spearman and SSIM against the trained model's maps. ``regions`` (bool [N, H,
    W]) restricts the Spearman to those pixels (the detection study: the explained box,
    since the anchor's receptive field puts a random detector's relevance there too).

    ``compute`` with ``backend: ray`` explains the steps in parallel on Ray workers, each
    step's model rebuilt from the trained one (:func:`_step_maps`): the same maps."""
    randomised = copy.deepcopy(model).eval()
    groups = cascade_groups(net_of(randomised), n_steps)
    total = sum(len(g) for g in groups)
    if compute is not None and compute.backend == "ray":
        payloads = [{"k": k, "n_steps": n_steps, "seed": seed, "net_of": net_of, "explain": explain}
                    for k in range(len(groups) + 1)]
        steps = list(map_chunks(_step_maps, model, payloads, compute, total=len(payloads), desc="cascade"))
    else:
        steps = [np.asarray(explain(model))]
        for k, group in enumerate(groups, start=1):
            randomise_(group, seed * 1000 + k)
            steps.append(np.asarray(explain(randomised)))
    original = steps[0]
    rows = [{"step": 0, "randomised_from": None, "layers_random": 0, "layers_total": total,
             "spearman": spearman_abs(original, original, regions), "ssim": ssim_abs(original, original),
             "emprt": efficient_mprt(original, original)}]
    done = 0
    for k, (group, maps) in enumerate(zip(groups, steps[1:]), start=1):
        done += len(group)
        rows.append({"step": k, "randomised_from": group[-1][0], "layers_random": done, "layers_total": total,
                     "spearman": spearman_abs(original, maps, regions), "ssim": ssim_abs(original, maps),
                     "emprt": efficient_mprt(original, maps)})
    return rows


def randomisation_summary(rows: list[dict], fail_threshold: float) -> dict:
    """Mean curves and the verdict: a method **fails** when the mean Spearman rank
    correlation between its maps from the trained and the fully randomised model is at
    least ``fail_threshold`` (the paper gives no number; see docs/guide/reliability.md)."""
    spearman = [round(float(np.mean(r["spearman"])), 6) for r in rows]
    ssim = [round(float(np.mean(r["ssim"])), 6) for r in rows]
    emprt = rows[-1]["emprt"]
    return {"randomised_from": [r["randomised_from"] for r in rows],
            "layers_random": [r["layers_random"] for r in rows],
            "spearman": spearman, "ssim": ssim,
            "final_spearman": spearman[-1], "final_ssim": ssim[-1],
            "emprt": None if np.isnan(emprt).all() else round(float(np.nanmean(emprt)), 6),
            "fails": bool(spearman[-1] >= fail_threshold)}
