"""The reliability checks of each study kind, for `stages/reliability.py` (issue 13).

``RELIABILITY_CHECKS[kind](name, study, params, cfg, run) -> (rows, sections, plots)``:
per-image scores (a long table: method, image_id, metric, value; they get the stage's
bootstrap intervals and control separation), sections of
``metrics/<study>_reliability.json``, and tables for ``dvc plots``. Kept out of the kind
modules so that train/attribute/evaluate stages do not depend on this file.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from xaibench.data import dataset_classes
from xaibench.data.images import load_cues
from xaibench.explain.randomisation import randomisation_cascade, randomisation_summary
from xaibench.metrics.faithfulness import area_under_curve, insertion_canvas
from xaibench.metrics.localisation import localisation_scores
from xaibench.params import ParamsError
from xaibench.store import attribution_path, maps_of, read_attributions
from xaibench.studies.common import load_model_and_test
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


def fill_images(model, pixels: torch.Tensor, fill: str, blur_sigma: float) -> torch.Tensor:
    """What deleted pixels become: ``mean`` (the training mean colour; RISE's 0 after
    normalisation), ``black`` (pixel value 0) or ``blur`` (the image under the insertion
    canvas's Gaussian blur)."""
    if fill == "mean":
        return model.mean.view(1, 3, 1, 1).expand_as(pixels)
    if fill == "black":
        return torch.zeros_like(pixels)
    return torch.stack([insertion_canvas(image, blur_sigma) for image in pixels])


def fills_and_saturation(model, pixels: torch.Tensor, maps_by_method: dict[str, np.ndarray], targets, ids,
                         fills: list[str], steps: int, blur_sigma: float, batch_size: int, n_classes: int):
    """(per-image rows ``DAUC:<fill>``, fills section, saturation section).

    Fill sensitivity (Blücher et al. 2024, "Decoupling pixel flipping and occlusion
    strategy for consistent XAI benchmarks"): the deletion AUC of every method under each
    fill. Saturation: the mean target probability on the clean image, on the insertion
    start (the blurred image) and on the fully deleted image under each fill, against
    chance 1/C; ``insertion_start_retains`` = (p_blur − 1/C) / (p_clean − 1/C), the share
    of the clean image's evidence the blurred start still carries (near 1: IAUC starts
    saturated and measures little)."""
    from xaibench.explain.perturbation import deletion_insertion_curves

    targets = torch.as_tensor(targets)
    rows, daucs, deleted = [], {}, {}
    for fill in fills:
        ends = fill_images(model, pixels, fill, blur_sigma)
        for method, maps in maps_by_method.items():
            curves = deletion_insertion_curves(model, pixels, maps, targets, pixels, ends, steps, batch_size)
            values = area_under_curve(curves)
            rows += long_rows(method, ids, {f"DAUC:{fill}": values})
            daucs.setdefault(fill, {})[method] = round(float(np.mean(values)), 6)
        deleted[fill] = round(float(curves[:, -1].mean()), 6)  # every pixel filled: the same for every map
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
    """(section, plot table): the cascade for every method but ``excluded``;
    ``explainers[method](model) -> maps``; its steps on Ray workers with a ``compute`` of
    backend ray. The table has one row per step and a Spearman and an SSIM column per method."""
    section, table = {}, {}
    for method, explain in explainers.items():
        if method in excluded:
            continue
        rows = randomisation_cascade(model, explain, n_steps, seed, net_of=net_of, regions=regions,
                                     compute=compute)
        section[method] = randomisation_summary(rows, fail_threshold)
        table["layers_random"] = section[method]["layers_random"]
        table[f"{method}_spearman"] = section[method]["spearman"]
        table[f"{method}_ssim"] = section[method]["ssim"]
        log.info("randomisation %s: Spearman %s -> %s", method, section[method]["spearman"],
                 "fails" if section[method]["fails"] else "passes")
    verdict = {"fail_threshold": fail_threshold, "not_checked": sorted(set(explainers) & set(excluded)),
               "passed": sorted(m for m, s in section.items() if not s["fails"]),
               "failed": sorted(m for m, s in section.items() if s["fails"])}
    return {"methods": section, **verdict}, pd.DataFrame(table)


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
    from xaibench.explain import METHODS

    n = len(next(iter(maps.values())))
    extra = {c: METHODS[c](None, pixels[:n], targets[:n], seed=seed, image_indices=list(range(n)))
             for c in controls if c not in maps}
    return {**maps, **extra}


def registry_explainer(method: str, pixels: torch.Tensor, targets, seed: int, options: dict):
    """``explain(model) -> maps`` with the registered ``method`` on fixed images and targets."""
    from xaibench.explain import METHODS

    def explain(model):
        device = next(model.parameters()).device  # a GPU worker's model (compute.gpus_per_worker)
        return METHODS[method](model, pixels.to(device), targets.to(device), seed=seed,
                               image_indices=list(range(len(pixels))), **options)

    return explain


def classification_checks(model, pixels: torch.Tensor, targets, ids, maps: dict[str, np.ndarray], explainers: dict,
                          dataset: str, test_ids, cfg, seed: int, n_classes: int, faithfulness=None, excluded=(),
                          compute=None):
    """The checks every classification study shares: localisation against the cue masks
    (+ cue flip rate over the whole test split), randomisation of ``explainers``
    (``{method: explain(model) -> maps}`` on the first ``cfg.randomisation.n_images``
    images), and, with ``faithfulness = (steps, blur_sigma, batch_size)``, the deletion
    fills and saturation; ``compute``: where the randomisation cascade runs. Returns
    (per-image rows, sections, plots)."""
    rows, localisation_section = localisation(maps, ids, study_cues(dataset, ids))
    localisation_section["cue_flip"] = cue_flip_rate(model, study_cues(dataset, test_ids))
    sections = {"localisation": localisation_section}
    if faithfulness is not None:
        steps, sigma, batch_size = faithfulness
        fill_rows, sections["fills"], sections["saturation"] = fills_and_saturation(
            model, pixels, maps, targets, ids, cfg.fills, steps, sigma, batch_size, n_classes)
        rows = rows + fill_rows
    sections["randomisation"], curves = randomisation(model, explainers, cfg.randomisation.steps,
                                                      cfg.randomisation.fail_threshold, seed, excluded=excluded,
                                                      compute=compute)
    return rows, sections, {"randomisation": curves}


def saliency_checks(name: str, study, params, cfg, run):
    """The checks of issue 13 for a saliency study (src/xaibench/studies/reliability.py):
    localisation, cue flip rate, randomisation of every method, deletion fills and
    saturation. Returns (per-image rows, sections, plots)."""
    model, test, _ = load_model_and_test(name, study)
    frames = {m: read_attributions(attribution_path("data/attributions", name, study.model, m))
              for m in study.attribute.methods}
    first = next(iter(frames.values()))
    ids, targets = list(first.image_id), torch.tensor(first.target.to_numpy())
    pixels = to_tensor(test["images"][: len(ids)])
    maps = with_controls({m: maps_of(f) for m, f in frames.items()}, pixels, targets, cfg.controls, params.seed)
    n = min(cfg.randomisation.n_images, len(ids))
    options = study.attribute.model_dump()
    explainers = {m: registry_explainer(m, pixels[:n], targets[:n], params.seed, options.get(m, {}))
                  for m in maps}
    ev = study.evaluate
    rows, sections, plots = classification_checks(
        model, pixels, targets, ids, maps, explainers, study.dataset, test["ids"], cfg, params.seed,
        len(dataset_classes(study.dataset)), faithfulness=(ev.steps, ev.insertion_blur_sigma, ev.batch_size),
        excluded=excluded_methods(cfg, name, explainers), compute=params.compute)
    return rows, sections, plots


def imagenet_checks(name: str, study, params, cfg, run):
    """Per architecture (methods named ``<arch>/<method>``): the classification checks,
    the edge control added to each model's methods; LIME (quickshift) and the two SHAP
    explainers re-run as the attribute stage runs them, for the randomisation."""
    from xaibench.data.images import load_split
    from xaibench.explain.lime_method import segment_weights_to_map
    from xaibench.models import load_model
    from xaibench.studies import imagenet

    test = load_split(f"data/prepared/{study.dataset}", "test")
    cfg_a, seed = study.attribute, params.seed

    def study_explainer(method, images, pixels, targets):
        def one(model, i):
            if method == "lime":
                segments = imagenet.quickshift_segments(images[i] / 255.0, cfg_a.lime, seed)
                _, weights = imagenet.lime_top_labels(model, pixels[i], segments, cfg_a.lime, seed)
                return segment_weights_to_map(segments, dict(enumerate(weights[:, 0])))
            if method == "shap_gradient":
                return imagenet.shap_gradient(model, pixels[i], int(targets[i]), cfg_a.shap.nsamples, seed)
            return imagenet.shap_partition(model, pixels[i], int(targets[i]), cfg_a.shap.partition_max_evals,
                                           cfg_a.shap.blur, cfg_a.lime.batch_size)

        return lambda model: np.stack([one(model, i) for i in range(len(pixels))])

    rows, sections, plots = [], {}, {}
    ev = study.evaluate
    by_architecture = imagenet.methods_by_architecture(study)
    excluded = excluded_methods(cfg, name, {*cfg.controls, *(m for names in by_architecture.values() for m in names)})
    for arch, names in by_architecture.items():
        model = load_model(imagenet.model_path(name, arch))
        frames = {m: read_attributions(attribution_path("data/attributions", name, arch, m)) for m in names}
        first = next(iter(frames.values()))
        ids, targets = list(first.image_id), torch.tensor(first.target.to_numpy())
        pixels = to_tensor(test["images"][: len(ids)])
        maps = with_controls({m: maps_of(f) for m, f in frames.items()}, pixels, targets, cfg.controls, seed)
        n = min(cfg.randomisation.n_images, len(ids))
        explainers = {m: (registry_explainer(m, pixels[:n], targets[:n], seed, {}) if m in cfg.controls
                          else study_explainer(m, test["images"][:n], pixels[:n], targets[:n])) for m in maps}
        arch_rows, arch_sections, arch_plots = classification_checks(
            model, pixels, targets, ids, maps, explainers, study.dataset, test["ids"], cfg, seed,
            n_outputs(model, pixels),
            faithfulness=(ev.steps, ev.insertion_blur_sigma, ev.batch_size), excluded=excluded)
        rows += [{**r, "method": f"{arch}/{r['method']}"} for r in arch_rows]
        for key, value in arch_sections.items():
            sections.setdefault(key, {})[arch] = value
        plots[f"randomisation_{arch}"] = arch_plots["randomisation"]
    return rows, sections, plots


def senn_checks(name: str, study, params, cfg, run):
    """SENN study: localisation of LIME, IG and the controls against the twin's object
    (= cue) masks; per-image confidence drop when the top ``removal_fractions`` of the
    pixels by |attribution| take the mean colour (``removal_drop:<fraction>``, the
    study's removal on pixels for every method); randomisation of LIME, IG and SENN's own
    relevances θ (a k-vector: its Spearman is over the concepts)."""
    from xaibench.metrics.stability import removal_masks_pixels
    from xaibench.studies import senn

    model, test, _ = load_model_and_test(name, study)
    frames = {m: read_attributions(attribution_path("data/attributions", name, study.model, m))
              for m in senn.METHOD_NAMES}
    first = frames["senn"]
    ids, targets = list(first.image_id), torch.tensor(first.target.to_numpy())
    pixels = to_tensor(test["images"][: len(ids)])
    maps = with_controls({m: maps_of(f) for m, f in frames.items() if m != "senn"}, pixels, targets,
                         cfg.controls, params.seed)
    n = min(cfg.randomisation.n_images, len(ids))
    explainers = {m: registry_explainer(m, pixels[:n], targets[:n], params.seed, senn.method_options(study, m))
                  for m in maps}
    explainers["senn"] = lambda m: senn.senn_relevance(m, pixels[:n], targets[:n])
    rows, sections, plots = classification_checks(model, pixels, targets, ids, maps, explainers, study.dataset,
                                                  test["ids"], cfg, params.seed,
                                                  len(dataset_classes(study.dataset)),
                                                  excluded=excluded_methods(cfg, name, explainers))
    fill = model.mean.view(1, 3, 1, 1)
    with torch.no_grad():
        p0 = model(pixels).softmax(-1)[torch.arange(len(ids)), targets]
        for method, method_maps in maps.items():
            for fraction in study.evaluate.removal_fractions:
                masks = torch.from_numpy(np.stack([removal_masks_pixels(np.abs(m), fraction) for m in method_maps]))
                removed = torch.where(masks.unsqueeze(1), fill, pixels)
                drop = (p0 - model(removed).softmax(-1)[torch.arange(len(ids)), targets]).numpy()
                rows += long_rows(method, ids, {f"removal_drop:{fraction:g}": drop})
    return rows, sections, plots


def detection_checks(name: str, study, params, cfg, run):
    """SSD study: randomisation of every method on the first ``n_images`` explained
    boxes (the detector's layers, head first; the explained box keeps its anchor and
    class; Spearman over the pixels of the box: outside it, the anchor's receptive field
    makes even a random detector's map zero, which would count as agreement); the per-box
    scores of evaluate get the intervals. No cue masks: the boxes are
    the detection study's ground truth (``relevance_in_box``)."""
    import json
    from pathlib import Path

    from xaibench.explain.detection import BOX_METHODS
    from xaibench.metrics.detection import box_mask
    from xaibench.models.ssd import BoxLogit
    from xaibench.studies import detection

    model, test, pixels = detection.load_detector_and_test(name, study)
    chosen = json.loads(Path(f"data/attributions/{name}/boxes.json").read_text())
    segments = np.load(f"data/attributions/{name}/segments.npz")["segments"]
    n = min(cfg.randomisation.n_images, len(chosen))

    def explainer(method):
        def explain(detector):
            return np.stack([BOX_METHODS[method](BoxLogit(detector, c["anchor"]).eval(), pixels[c["row"]:c["row"] + 1],
                                                 c["label"], segments[k], study.attribute, params.seed + k)
                             for k, c in enumerate(chosen[:n])])
        return explain

    boxes = np.stack([box_mask(c["box"], *pixels.shape[-2:]) for c in chosen[:n]])
    explainers = {m: explainer(m) for m in study.attribute.methods}
    section, curves = randomisation(model, explainers, cfg.randomisation.steps, cfg.randomisation.fail_threshold,
                                    params.seed, net_of=lambda detector: detector, regions=boxes,
                                    excluded=excluded_methods(cfg, name, explainers))
    return [], {"localisation": {"available": False, "reason": "detection: see relevance_in_box (the box is the "
                                                               "ground truth)"},
                "randomisation": section}, {"randomisation": curves}


RELIABILITY_CHECKS = {"saliency": saliency_checks, "imagenet": imagenet_checks, "senn": senn_checks,
                      "detection": detection_checks}


def gad_checks(gad, cfg, seed: int) -> tuple[dict, dict]:
    """GAD (a grid of its own): per (architecture, dataset) cell, the intervals of the
    per-image RC and RS of every method (from gad_evaluate), the localisation of the
    original and the GAD maps of the predicted class (``<method>+gad``) and of the
    controls against the dataset's cue masks, and the randomisation of every gradient
    method on the original classifier. Returns (report by cell, plots)."""
    from xaibench.metrics.reliability import reliability_report
    from xaibench.models import load_model
    from xaibench.studies import gad as gad_study

    stored = pd.read_csv("data/reports/gad/per_image_scores.csv", dtype={"image_id": str})
    report, plots = {}, {}
    for arch in gad.architectures:
        for dataset in gad.datasets:
            cell = f"{arch}_{dataset}"
            pixels, labels, ids = gad_study.load_pixels(dataset, "test", gad.image_size)
            position = {str(i): k for k, i in enumerate(ids)}
            model = load_model(gad_study.original_path(arch, dataset))
            maps, picked, targets = {}, None, None
            for method in gad.attribute.methods:
                frame = read_attributions(attribution_path("data/attributions/gad", cell, arch, method))
                frame = frame[frame.target == frame.predicted]
                for variant, name in (("original", method), ("gad", f"{method}+gad")):
                    rows = frame[frame.variant == variant]
                    maps[name] = maps_of(rows)
                    picked = [position[str(i)] for i in rows.image_id]
                    targets = torch.tensor(rows.target.to_numpy())
            image_ids = [str(ids[k]) for k in picked]
            images = pixels[picked]
            maps = with_controls(maps, images, targets, cfg.controls, seed)
            rows, localisation_section = localisation(maps, image_ids, study_cues(dataset, image_ids))
            n = min(cfg.randomisation.n_images, len(picked))
            explainers = {m: registry_explainer(m, images[:n], targets[:n], seed,
                                                {"n_steps": gad.attribute.ig_steps} if m == "integrated_gradients"
                                                else {})
                          for m in [*gad.attribute.methods, *cfg.controls]}
            section, curves = randomisation(model, explainers, cfg.randomisation.steps,
                                            cfg.randomisation.fail_threshold, seed,
                                            excluded=excluded_methods(cfg, "gad", explainers))
            cell_scores = stored[stored.cell == cell].drop(columns="cell")
            intervals = reliability_report(pd.concat([cell_scores, pd.DataFrame(rows)], ignore_index=True),
                                           cfg.controls, cfg.n_resamples, cfg.level, seed)
            report[cell] = {"localisation": localisation_section, "randomisation": section, **intervals}
            plots[f"randomisation_{cell}"] = curves
    return report, plots
