"""The reliability checks every classification study shares, which each study kind's
``reliability(cell, study, params, cfg, run) -> (rows, sections, plots)`` calls:
per-image scores (a long table: method, image_id, metric, value; they get the stage's
bootstrap intervals and control separation), sections of
``metrics/<study>_reliability.json``, and tables for ``dvc plots``; and the report of one
cell (:func:`cell_report`) that merges them with the intervals.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xaibench.data.images import load_cues
from xaibench.explain import METHODS
from xaibench.explain.perturbation import deletion_insertion_curves, fill_image
from xaibench.explain.randomisation import (SENSITIVITY_STREAM, SMOOTH_STREAM, noisy_copies, random_other_classes,
                                           randomisation_cascade, randomisation_summary, randomised_copy,
                                           spearman_abs, ssim_abs)
from xaibench.metrics.faithfulness import area_under_curve, insertion_canvas
from xaibench.metrics.randomisation import max_sensitivity
from xaibench.metrics.registry import reported
from xaibench.metrics.reliability import reliability_report
from xaibench.metrics.localisation import cue_order, localisation_scores, resize_maps
from xaibench.schema import ParamsError
from xaibench.training.classifier import to_tensor

log = logging.getLogger(__name__)


def long_rows(method: str, ids, values: dict[str, np.ndarray]) -> list[dict]:
    """Per-image rows of the score table for one method."""
    return [{"method": method, "image_id": str(image_id), "metric": metric, "value": float(v[k])}
            for metric, v in values.items() for k, image_id in enumerate(ids)]


def study_cues(dataset: str, ids) -> dict | None:
    """The cue folder's arrays aligned to ``ids`` (the explained test images), or None
    when the dataset has no cue masks."""
    cues = load_cues(f"data/cues/{dataset}")
    if "cue_masks" not in cues:
        return None
    where = {str(i): k for k, i in enumerate(cues["ids"])}
    rows = [where[str(i)] for i in ids]
    return {key: value[rows] for key, value in cues.items()}


def localisation(maps_by_method: dict[str, np.ndarray], ids, cues: dict | None):
    """(per-image rows, section): relevance mass / rank accuracy and pointing game of
    every method against the cue masks, the chance level beside them."""
    if cues is None:
        return [], {"available": False, "reason": "no cue masks for this dataset (a real source)"}
    rows, means, chance = [], {}, None
    for method, maps in maps_by_method.items():
        scores = localisation_scores(maps, cues["cue_masks"][: len(maps)])
        chance = scores.pop("chance")
        rows += long_rows(method, ids[: len(maps)], scores)
        means[method] = {k: round(float(np.nanmean(v)), 6) for k, v in scores.items()}
    return rows, {"available": True, "means": means, "chance_level": round(float(np.mean(chance)), 6)}


@torch.no_grad()
def cue_flip_rate(model, cues: dict | None, batch_size: int = 128) -> dict:
    """Share of test images whose prediction follows the swapped cue: the model's
    prediction on the same scene drawn with another class's cue equals that class.
    High = the cue mask is the ground truth of what the model uses."""
    if cues is None or "swapped_images" not in cues:
        return {"available": False}
    pixels = to_tensor(cues["swapped_images"])
    predicted = torch.cat([model(chunk).argmax(-1) for chunk in pixels.split(batch_size)]).numpy()
    follows = predicted == cues["swapped_labels"]
    return {"available": True, "cue_flip_rate": round(float(follows.mean()), 6), "n_images": int(len(follows))}


@torch.no_grad()
def target_probability(model, pixels: torch.Tensor, targets, batch_size: int = 128) -> np.ndarray:
    """Softmax probability of each image's target [N], ``batch_size`` images at a time."""
    probs = torch.cat([model(chunk).softmax(-1) for chunk in pixels.split(batch_size)])
    return probs[torch.arange(len(pixels)), torch.as_tensor(targets)].numpy()


CUE_ORDER_MARGIN = 0.05   # drops closer than this give no order to recover (cue_order: NaN)


@torch.no_grad()
def cue_importance(model, pixels: torch.Tensor, targets, cues: dict | None, batch_size: int = 128):
    """The measured importance of each cue of a twin with several (the cue folder's
    ``part_<cue>`` masks and ``removed_<cue>`` renderings): per explained image, the drop
    of the target probability when the cue is drawn plain, ``p(t | x) − p(t | x without
    c)``. Returns ({cue: drops [n]}, section: per cue the mean drop and its area share, the
    share of images on which the first cue matters more, the images with an order), or
    ({}, None) without cue parts."""
    names = sorted(k[len("part_"):] for k in (cues or {}) if k.startswith("part_"))
    if len(names) < 2:
        return {}, None
    n = len(pixels)
    targets = targets[:n]
    clean = target_probability(model, pixels, targets, batch_size)
    drops = {c: clean - target_probability(model, to_tensor(cues[f"removed_{c}"][:n]), targets, batch_size)
             for c in names}
    first, second = names[0], names[1]
    diff = drops[first] - drops[second]
    section = {"cues": {c: {"mean_drop": reported(np.mean(d)), "median_drop": reported(np.median(d)),
                            "area_share": reported(np.mean(cues[f"part_{c}"][:n]))} for c, d in drops.items()},
               "order": f"{first} vs {second}", "margin": CUE_ORDER_MARGIN,
               f"share_{first}_more": reported(np.mean(diff > CUE_ORDER_MARGIN)),
               f"share_{second}_more": reported(np.mean(diff < -CUE_ORDER_MARGIN)),
               "n_images_ordered": int((np.abs(diff) >= CUE_ORDER_MARGIN).sum()), "n_images": int(n)}
    return drops, section


def cue_order_rows(maps_by_method: dict[str, np.ndarray], ids, cues: dict, drops: dict[str, np.ndarray]) -> list:
    """Per-image ``cue_order`` rows of every method (:func:`~xaibench.metrics.localisation.cue_order`)."""
    first, second = sorted(drops)[:2]
    rows = []
    for method, maps in maps_by_method.items():
        n = min(len(maps), len(drops[first]))
        masks = [np.asarray(cues[f"part_{c}"][:n], bool) for c in (first, second)]
        at_mask_size = resize_maps(maps[:n], masks[0].shape[1:])   # as the localisation scores compare them
        rows += long_rows(method, ids[:n], {"cue_order": cue_order(at_mask_size, *masks, drops[first][:n],
                                                                    drops[second][:n], CUE_ORDER_MARGIN)})
    return rows


def fill_images(model, pixels: torch.Tensor, fill: str, blur_sigma: float) -> torch.Tensor:
    """What deleted pixels become under ``fill`` (:data:`~xaibench.explain.perturbation.FILLS`):
    ``mean`` (the model's training mean colour), ``black``, or ``blur`` (the insertion canvas)."""
    if fill == "blur":
        return torch.stack([insertion_canvas(image, blur_sigma) for image in pixels])
    return torch.stack([fill_image(image, fill, value=model.mean.flatten()) for image in pixels])


def fills_and_saturation(model, pixels: torch.Tensor, maps_by_method: dict[str, np.ndarray], targets, ids,
                         fills: list[str], steps: int, blur_sigma: float, batch_size: int, n_classes: int,
                         scored: dict[str, dict[str, np.ndarray]] | None = None):
    """(per-image rows ``DAUC:<fill>``, fills section, saturation section).

    Fill sensitivity (Blücher et al. 2024, "Decoupling pixel flipping and occlusion
    strategy for consistent XAI benchmarks"): the deletion AUC of every method under each
    fill. Saturation: the mean target probability on the clean image, on the insertion
    start (the blurred image) and on the fully deleted image under each fill, against
    chance 1/C; ``insertion_start_retains`` = (p_blur − 1/C) / (p_clean − 1/C), the share
    of the clean image's evidence the blurred start still carries (near 1: IAUC starts
    saturated and measures little).

    ``scored``: ``{fill: {method: DAUC [N]}}`` the evaluate stage already measured on these
    images with these steps (its ``deletion_fill``, :func:`stored_daucs`): those curves are
    not run again, their values are taken as stored."""

    targets = torch.as_tensor(targets)
    rows, daucs, deleted = [], {}, {}
    scored = scored or {}
    for fill in fills:
        ends = fill_images(model, pixels, fill, blur_sigma)
        for method, maps in maps_by_method.items():
            values = scored.get(fill, {}).get(method)
            if values is None:
                values = area_under_curve(deletion_insertion_curves(model, pixels, maps, targets, pixels, ends,
                                                                    steps, batch_size))
            rows += long_rows(method, ids, {f"DAUC:{fill}": values})
            daucs.setdefault(fill, {})[method] = round(float(np.mean(values)), 6)
        deleted[fill] = round(float(target_probability(model, ends, targets, batch_size).astype(np.float64).mean()), 6)
    with torch.no_grad():
        clean = model(pixels).softmax(-1)[torch.arange(len(pixels)), targets].mean().item()
        blurred = model(fill_images(model, pixels, "blur", blur_sigma)).softmax(-1)
        blur_target = blurred[torch.arange(len(pixels)), targets].mean().item()
        blur_kept = (blurred.argmax(-1) == targets).float().mean().item()
    chance = 1.0 / n_classes
    retains = (blur_target - chance) / (clean - chance) if clean > chance else float("nan")
    saturation = {"clean": round(clean, 6), "insertion_start": round(blur_target, 6),
                  "insertion_start_keeps_prediction": round(blur_kept, 6), "fully_deleted": deleted,
                  "chance": round(chance, 6), "insertion_start_retains": round(retains, 6),
                  "insertion_start_carries_class": bool(retains > 0.5)}
    return rows, {"DAUC": daucs}, saturation


def randomisation(model, explainers: dict, n_steps: int, fail_threshold: float, seed: int,
                  net_of=lambda m: m.net, regions=None, excluded=(), compute=None):
    """(section, plot table, per-image eMPRT): the cascade for every method but ``excluded``;
    ``explainers[method](model) -> maps``; its steps on Ray workers with a ``compute`` of
    backend ray. The table has one row per step and a Spearman and an SSIM column per method;
    the last item is ``{method: eMPRT [n]}`` (the fully randomised model's map against the
    trained one's, :func:`~xaibench.metrics.randomisation.efficient_mprt`)."""
    section, table, emprt = {}, {}, {}
    for method, explain in explainers.items():
        if method in excluded:
            continue
        rows = randomisation_cascade(model, explain, n_steps, seed, net_of=net_of, regions=regions,
                                     compute=compute)
        section[method] = randomisation_summary(rows, fail_threshold)
        emprt[method] = rows[-1]["emprt"]
        table["layers_random"] = section[method]["layers_random"]
        table[f"{method}_spearman"] = section[method]["spearman"]
        table[f"{method}_ssim"] = section[method]["ssim"]
        log.info("randomisation %s: Spearman %s -> %s", method, section[method]["spearman"],
                 "fails" if section[method]["fails"] else "passes")
    verdict = {"fail_threshold": fail_threshold, "not_checked": sorted(set(explainers) & set(excluded)),
               "passed": sorted(m for m, s in section.items() if not s["fails"]),
               "failed": sorted(m for m, s in section.items() if s["fails"])}
    return {"methods": section, **verdict}, pd.DataFrame(table), emprt


def random_logit(model, explainers: dict, maps: dict[str, np.ndarray], targets, n: int, n_classes: int, seed: int,
                 excluded=()) -> dict[str, np.ndarray]:
    """The random-logit test (Sixt, Granz & Landgraf 2020) of every method but ``excluded``:
    ``{method: SSIM [n]}`` (signed maps; the methods with a pixel map in ``maps``) between its stored map
    of each of the first ``n`` images' target
    and its map of a random other class
    (:func:`~xaibench.explain.randomisation.random_other_classes`), which
    ``explainers[method](model, targets)`` computes."""
    other = random_other_classes(targets[:n], n_classes, seed, range(n))
    return {method: ssim_abs(maps[method][:n], np.asarray(explain(model, other)), absolute=False)
            for method, explain in explainers.items() if method not in excluded and method in maps}


def final_spearmans(section: dict, prefix: str = "randomisation.final_spearman") -> dict[str, float]:
    """MLflow metrics of a randomisation section: ``<prefix>.<method>``, or per group (an
    architecture, a GAD cell) ``<prefix>.<group>.<method>`` where the section is split so."""
    if "methods" in section:
        return {f"{prefix}.{m}": s["final_spearman"] for m, s in section["methods"].items()}
    return {key: value for group, part in section.items()
            for key, value in final_spearmans(part, f"{prefix}.{group}").items()}


def excluded_methods(cfg, study: str, explained) -> list[str]:
    """``reliability.randomisation.exclude.<study>``, every name checked against the methods
    and controls the study explains (a misspelt one would silently be checked after all)."""
    excluded = cfg.randomisation.exclude.get(study, [])
    unknown = sorted(set(excluded) - set(explained))
    if unknown:
        raise ParamsError(f"params.yaml: reliability.randomisation.exclude.{study}: {unknown} are not "
                          f"explained in this study (its methods and controls: {sorted(explained)})")
    return excluded


@torch.no_grad()
def n_outputs(model, pixels: torch.Tensor) -> int:
    """Number of classes the model scores (1000 for pretrained ImageNet weights)."""
    return int(model(pixels[:1]).shape[-1])


def with_controls(maps: dict[str, np.ndarray], pixels: torch.Tensor, targets, controls: list[str], seed: int) -> dict:
    """``maps`` plus a map of every control the study did not store (computed here:
    the controls are model-independent and cost nothing)."""

    n = len(next(iter(maps.values())))
    extra = {c: METHODS[c](None, pixels[:n], targets[:n], seed=seed, image_indices=list(range(n)))
             for c in controls if c not in maps}
    return {**maps, **extra}


def input_noise_checks(model, explainers: dict, maps: dict[str, np.ndarray], pixels: torch.Tensor, targets,
                       n: int, noise, n_steps: int, seed: int, excluded=(),
                       net_of=lambda m: m.net) -> dict[str, dict[str, np.ndarray]]:
    """Max-sensitivity and sMPRT of every method with a pixel map but ``excluded``, on the
    first ``n`` images (``noise``: ``reliability.input_noise``): ``{method: {"max_sensitivity":
    [n], "sMPRT": [n]}}``. Each method explains ``noise.samples`` uniform copies of each image
    with the trained model (max-sensitivity against its stored map) and as many Gaussian copies
    with the trained and with the fully randomised model (the cascade's last step), whose
    averages sMPRT compares (Spearman of |map|, as the MPRT)."""
    samples = noise.samples
    owners = np.repeat(np.arange(n), samples)
    repeated = torch.as_tensor(targets[:n]).repeat_interleave(samples)
    uniform = noisy_copies(pixels[:n], samples, "uniform", noise.radius, seed, SENSITIVITY_STREAM)
    gaussian = noisy_copies(pixels[:n], samples, "gaussian", noise.smooth_noise, seed, SMOOTH_STREAM)
    randomised = randomised_copy(model, None, n_steps, seed, net_of)
    out = {}
    for method, explain in explainers.items():
        if method in excluded or method not in maps:
            continue
        shape = (n, samples, *maps[method].shape[1:])
        moved = np.asarray(explain(model, repeated, uniform, owners)).reshape(shape)
        smooth = [np.asarray(explain(net, repeated, gaussian, owners)).reshape(shape).mean(1)
                  for net in (model, randomised)]
        out[method] = {"max_sensitivity": max_sensitivity(maps[method][:n], moved),
                       "sMPRT": spearman_abs(*smooth)}
        log.info("input noise %s: max-sensitivity %.4g, sMPRT %.4g", method,
                 np.nanmean(out[method]["max_sensitivity"]), np.nanmean(out[method]["sMPRT"]))
    return out


def registry_explainer(method: str, pixels: torch.Tensor, targets, seed: int, options=None):
    """``explain(model, other_targets=None, other_pixels=None, image_indices=None) -> maps``
    with the registered ``method``: of the fixed images and targets, or of others (the
    random-logit test's classes; the input-noise checks' noisy copies, each seeded as the
    image it copies, ``image_indices``)."""

    def explain(model, other_targets=None, other_pixels=None, image_indices=None):
        device = next(model.parameters()).device  # a GPU worker's model (compute.gpus_per_worker)
        chosen = targets if other_targets is None else torch.as_tensor(other_targets)
        images = pixels if other_pixels is None else other_pixels
        indices = list(range(len(images))) if image_indices is None else [int(i) for i in image_indices]
        return METHODS[method](model, images.to(device), chosen.to(device), seed=seed, image_indices=indices,
                               options=options)

    return explain


def classification_checks(model, pixels: torch.Tensor, targets, ids, maps: dict[str, np.ndarray], explainers: dict,
                          dataset: str, test_ids, cfg, seed: int, n_classes: int, faithfulness=None, excluded=(),
                          compute=None, study: str | None = None, scored=None):
    """The checks every classification study shares: localisation against the cue masks
    (+ cue flip rate over the whole test split), randomisation of ``explainers``
    (``{method: explain(model) -> maps}`` on the first ``cfg.randomisation.n_images``
    images), and, with ``faithfulness = (steps, blur_sigma, batch_size)``, the deletion
    fills and saturation (``scored``: the DAUCs the evaluate stage measured, as
    :func:`fills_and_saturation` takes them); ``compute``: where the randomisation cascade runs. The
    randomised images also get eMPRT and the random-logit test (per-image rows:
    ``explainers[m](model, targets)`` explains other classes), and, where ``study`` is one of
    ``cfg.input_noise.studies``, max-sensitivity and sMPRT (:func:`input_noise_checks`).
    Returns (per-image rows, sections, plots)."""
    cues = study_cues(dataset, ids)
    rows, localisation_section = localisation(maps, ids, cues)
    localisation_section["cue_flip"] = cue_flip_rate(model, study_cues(dataset, test_ids))
    drops, importance = cue_importance(model, pixels, targets, cues)
    if importance is not None:
        localisation_section["cue_importance"] = importance
        rows = rows + cue_order_rows(maps, ids, cues, drops)
    sections = {"localisation": localisation_section}
    if faithfulness is not None:
        steps, sigma, batch_size = faithfulness
        fill_rows, sections["fills"], sections["saturation"] = fills_and_saturation(
            model, pixels, maps, targets, ids, cfg.fills, steps, sigma, batch_size, n_classes, scored)
        rows = rows + fill_rows
    sections["randomisation"], curves, emprt = randomisation(model, explainers, cfg.randomisation.steps,
                                                             cfg.randomisation.fail_threshold, seed,
                                                             excluded=excluded, compute=compute)
    n = min(cfg.randomisation.n_images, len(ids))
    logit = random_logit(model, explainers, maps, targets, n, n_classes, seed, excluded)
    noisy = (input_noise_checks(model, explainers, maps, pixels, targets, n, cfg.input_noise, cfg.randomisation.steps,
                                seed, excluded) if study in cfg.input_noise.studies else {})
    for method in logit:                       # the pixel maps (SENN's θ is a vector of concepts)
        rows = rows + long_rows(method, ids[:n], {"eMPRT": emprt[method], "random_logit": logit[method],
                                                  **noisy.get(method, {})})
    sections["randomisation"]["random_logit"] = {m: reported(np.nanmean(v)) for m, v in logit.items()}
    if noisy:
        sections["randomisation"]["input_noise"] = {m: {k: reported(np.nanmean(v)) for k, v in scores.items()}
                                                    for m, scores in noisy.items()}
    return rows, sections, {"randomisation": curves}


REPORT_SECTIONS = ("model", "localisation", "randomisation", "controls", "uninformative", "intervals", "agreement", "ranking",
                   "fills", "saturation")


def fill_agreement(agreement: dict) -> dict:
    """Kendall's tau between the DAUC rankings of every pair of deletion fills."""
    return {pair: tau for pair, tau in agreement.items()
            if all(name.startswith("DAUC:") for name in pair.split("|"))}


def stored_scores(name: str, cell: str) -> pd.DataFrame:
    """The per-image scores the evaluate stage wrote (data/reports/<name>/per_image_scores.csv,
    where it writes them), of ``cell`` where the table has a ``cell`` column (a grid's)."""
    path = Path(f"data/reports/{name}/per_image_scores.csv")
    if not path.exists():
        return pd.DataFrame()
    stored = pd.read_csv(path, dtype={"image_id": str})
    return stored[stored.cell == cell].drop(columns="cell") if "cell" in stored else stored


def stored_daucs(stored: pd.DataFrame, ids, fill: str, prefix: str = "") -> dict[str, dict[str, np.ndarray]]:
    """``{fill: {method: DAUC [N]}}``: the per-image DAUC the evaluate stage stored
    (:func:`stored_scores`; its deletion to ``fill``) of every method named ``<prefix><method>``
    whose rows cover ``ids``, in the order of ``ids`` ({} where none do). Its values carry the
    6 decimals of per_image_scores.csv, as the report's own DAUC rows do."""
    if stored.empty:
        return {}
    found = {}
    for method, rows in stored[stored.metric == "DAUC"].groupby("method"):
        values = rows.set_index("image_id")["value"]
        if method.startswith(prefix) and values.index.is_unique and set(ids) <= set(values.index):
            found[method[len(prefix):]] = values.loc[list(ids)].to_numpy(np.float64)
    return {fill: found} if found else {}


def cell_report(kind, name: str, cell: str, study, params, cfg, run) -> tuple[dict, dict]:
    """The reliability report of one cell of a study (the study itself for a one-cell
    study): the kind's checks (``kind.reliability``) merged with the bootstrap intervals,
    the rank stability, the metric agreement and the control separation of every per-image
    score (the evaluate stage's and the checks' own). Returns (report, plots)."""
    rows, sections, plots = kind.reliability(cell, study, params, cfg, run)
    scores = pd.concat([stored_scores(name, cell), pd.DataFrame(rows)], ignore_index=True)
    report = reliability_report(scores, cfg.controls, cfg.n_resamples, cfg.level, params.seed)
    if "fills" in sections:
        sections["fills"]["agreement"] = fill_agreement(report["agreement"])
    prefix = "" if cell == name else f"{cell}."
    run.log_metrics(final_spearmans(sections["randomisation"], f"randomisation.final_spearman.{prefix}".rstrip(".")))
    run.log_metrics({f"rank_stability.{prefix}{metric}.{method}": share
                     for metric, shares in report["intervals"]["rank_stability"].items()
                     for method, share in shares.items()})
    model = sections.get("model")
    if model and model["at_chance"]:     # nothing learned: every metric of the cell is moot
        reason = (f"model at chance: test accuracy {model['test_accuracy']:.3f} on {model['n_test']} images, "
                  f"{model['level']:.0%} interval [{model['interval'][0]:.3f}, {model['interval'][1]:.3f}] reaches chance "
                  f"{model['chance']:.3f}: its maps explain no learned cue")
        for metric in report["intervals"]["by_metric"]:
            report["uninformative"].setdefault(metric, []).append(reason)
    merged = {**report, **sections}
    return ({**{k: merged[k] for k in ("n_images", "n_resamples", "level", "direction")},
             **{k: merged[k] for k in REPORT_SECTIONS if k in merged}}, plots)
