"""SENN study (CIFAR-10): a self-explaining network against LIME and Integrated Gradients.

attribute: SENN's own explanation (relevances θ_c of the predicted class, stored as a
[1, k] "map"), LIME (SLIC superpixels) and IG on the same model; prototypes figure (the 9
test images that activate each concept most) and one image per class explained by the
three methods.

evaluate: concept-ablation faithfulness (SENN); top-k removal (LIME: superpixels, IG:
pixels, ranked by |attribution|) at the given fractions, as mean confidence drop and
prediction flip rate; stability under Gaussian noise (LIME Jaccard, IG SSIM, SENN cosine)
per level and overall, with the number of prediction changes; SENN's reconstruction error.

Source: ``shared/sources/senn-cifar10.md``, "III. Results": LIME and IG "Faithfulness"
(the top k % "with the highest absolute attribution" / "ranked by highest attribution
magnitudes" removed) and "Stability" (LIME re-run on each noisy image).
"""

from __future__ import annotations

import logging
import time
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from xaibench.data import DATASETS, dataset_classes
from xaibench.explain import METHODS
from xaibench.explain.lime_method import slic_segments
from xaibench.figures import concept_prototypes_figure, per_class_explanations_figure, stability_figure
from xaibench.metrics.concepts import ablation_correlation, concept_ablation_drops
from xaibench.metrics.stability import (add_noise, cosine, heatmap_ssim, jaccard, mask_jaccard, removal_masks_pixels,
                                        removal_masks_segments, segment_weights, top_segment_pixels, top_segments)
from xaibench.models import predict_proba
from xaibench.schema import Strict
from xaibench.store import attribution_path, maps_of, read_attributions
from xaibench.studies.classification import (ClassifierStudy, MethodOptions, Train, train_classifier_study,
                                            with_method_sections)
from xaibench.studies.common import explain_and_store, load_model_and_test, write_csv
from xaibench.studies.kind import Citation, StudyInfo, StudyKind, register_study_kind
from xaibench.studies.reliability import (classification_checks, excluded_methods, long_rows, registry_explainer,
                                          with_controls)
from xaibench.training.classifier import to_tensor

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------
# Training (the kind's own training code: dvc.yaml's train stage reruns
# this kind's studies alone when it changes).
#
# SENN's composite loss (Alvarez-Melis & Jaakkola 2018, eq. 6; the study's setting in
# ``shared/sources/senn-cifar10.md``, "II. Methodology": 10 epochs, 5 concepts, lr 2e-4,
# sparsity ξ = 2e-5, robustness λ = 1e-4, concept (reconstruction) weight 1):
#
#     L = L_y(f(x), y) + w_rob · L_θ(f) + w_rec · L_rec(x, x̂) + w_sp · L_sp(h)
#
# * L_y: cross-entropy of the aggregated logits;
# * L_rec: the conceptizer's reconstruction MSE ``mean (x − x̂)²`` (weight ``reconstruction_weight``);
# * L_sp: the concepts' sparsity penalty ``mean |h(x)|`` (weight ``sparsity_weight``, the study's ξ);
# * L_θ: robustness (weight ``robustness_weight``, the study's λ),
#   ``mean_n ‖J_x f(x) − θ(x)ᵀ J_x h(x)‖_F`` over *all* C outputs: J_x f is the [C, D]
#   Jacobian of the logits, θ(x) the [C, k] relevances, J_x h the [k, D] concept Jacobian;
#   the norm is the Frobenius norm of the [C, D] residual per image (the 2-norm of its
#   flattening), averaged over the batch. It is zero exactly when f behaves locally like a
#   linear model in the concepts with constant relevances, which makes θ an explanation.
# ----------------------------------------------------------------------------------------


def robustness_loss(model, x: torch.Tensor) -> torch.Tensor:
    """``mean_n ‖J_x f(x) − θ(x)ᵀ J_x h(x)‖_F`` over all classes (module docstring),
    computed through an identity of SENN's aggregation. Since ``f_c = Σ_k θ_ck(x) h_k(x)``,
    the product rule gives ``J_x f_c = Σ_k θ_ck J_x h_k + Σ_k h_k ∇_x θ_ck``, so row c of the
    residual is ``Σ_k h_k(x) ∇_x θ_ck(x)``: one vector-Jacobian product per class through the
    parameterizer alone, with the concepts h as the vector (kept differentiable: the loss
    still trains the conceptizer through them). The direct form takes C + k reverse passes
    through both networks (the logits' and the concepts' Jacobians) and most of an epoch's
    time; ``tests/test_senn.py`` checks the two forms agree on the twin SENN. The identity
    needs the logits to be exactly Σ_k θ_ck h_k, which is :class:`~xaibench.models.senn.SENN`'s
    aggregation."""
    x = x.detach().requires_grad_(True)
    concepts = model.conceptizer.encode(x)                                       # [N, k]
    relevances = model.relevances(x)                                             # [N, C, k]
    # materialize_grads: relevances that do not depend on the input have a zero residual
    residual = torch.stack([torch.autograd.grad(relevances[:, c], x, grad_outputs=concepts, create_graph=True,
                                                allow_unused=True, materialize_grads=True)[0].flatten(1)
                            for c in range(relevances.shape[1])], dim=1)                  # [N, C, D]
    return residual.flatten(1).norm(dim=1).mean()


def senn_loss(model, x: torch.Tensor, y: torch.Tensor, reconstruction_weight: float, sparsity_weight: float,
              robustness_weight: float, robustness_images: int | None = None):
    """Total loss and its terms (floats, for logging) for one batch; also the logits.
    ``robustness_images``: the robustness term on the batch's first images only (the batch
    is shuffled, so an unbiased estimate of its batch mean; the term's C reverse passes
    with a graph are most of an epoch's time), None: on all of them."""
    out = model.explain(x)
    classification = F.cross_entropy(out.logits, y)
    reconstruction = F.mse_loss(out.reconstruction, x)
    sparsity = out.concepts.abs().mean()
    robustness = (robustness_loss(model, x[:robustness_images]) if robustness_weight > 0
                  else torch.zeros(()))
    total = (classification + robustness_weight * robustness + reconstruction_weight * reconstruction
             + sparsity_weight * sparsity)
    terms = {"classification": classification.item(), "reconstruction": reconstruction.item(),
             "sparsity": sparsity.item(), "robustness": robustness.item(), "total": total.item()}
    return total, terms, out.logits


def pretrain_conceptizer(senn, normalized: torch.Tensor, epochs: int, lr: float, batch_size: int, seed: int,
                         on_epoch=None) -> list[float]:
    """Reconstruction-only epochs (Adam, MSE) of SENN's conceptizer before the joint
    training; returns the mean reconstruction MSE per epoch. Not in the study: a twin
    deviation (docs: fidelity.yaml). With the study's weights the joint loss leaves a fresh
    autoencoder at the mean image on the twin's 288 Adam steps (reconstruction MSE 1.008 ->
    0.988 on the normalised input, where the mean image scores 1.0); a few cheap
    reconstruction-only epochs first give the decoder weights that the reconstruction term
    can then hold against the classifier's pull."""
    conceptizer = senn.conceptizer
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(conceptizer.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        conceptizer.train()
        order = torch.randperm(len(normalized), generator=generator)
        total = 0.0
        for batch in normalized[order].split(batch_size):
            loss = F.mse_loss(conceptizer.decode(conceptizer.encode(batch)), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        history.append(total / len(normalized))
        log.info("conceptizer pretraining epoch %d/%d reconstruction %.4f", epoch + 1, epochs, history[-1])
        if on_epoch:
            on_epoch(epoch + 1, {"pretrain_reconstruction": history[-1]})
    return history


class SENNTrain(Train):
    reconstruction_weight: float = Field(ge=0)       # weighs the conceptizer's reconstruction MSE (study: 1)
    sparsity_weight: float = Field(ge=0)             # weighs mean |h(x)|, the study's xi (2e-5)
    robustness_weight: float = Field(ge=0)           # weighs the robustness loss, the study's lambda (1e-4)
    conceptizer_pretrain_epochs: int = Field(ge=0)   # reconstruction-only epochs first (twin; the study: 0)
    conceptizer_pretrain_lr: float = Field(gt=0, lt=1)
    robustness_images: int | None = Field(default=None, ge=1)  # images of each batch the robustness term
    #   is estimated on (the first of the shuffled batch: an unbiased estimate of its mean); null: all


class _SENNAttributeBase(MethodOptions):
    """``methods``: the post-hoc methods compared with SENN's own relevances (the study:
    ``[lime, ig]``); LIME is scored on its superpixels, every other method on pixels."""

    n_images: int = Field(ge=1)


SENNAttribute = with_method_sections(_SENNAttributeBase, "SENNAttribute", """The first ``n_images`` test
    images, explained by SENN's relevances and each of ``methods``; a method's options are
    its section (``lime:``, ``ig:``).""")


class SENNEvaluate(Strict):
    removal_fractions: list[float] = Field(min_length=1)
    n_removal_images: int = Field(ge=1)
    noise_sigmas: list[float] = Field(min_length=1)
    n_stability_images: int = Field(ge=1)
    top_superpixels: int = Field(ge=1)
    lime_stability_segments: Literal["resegment", "fixed"] = "resegment"  # the study: each noisy image anew

    @field_validator("removal_fractions")
    @classmethod
    def _fractions(cls, value):
        if any(not 0 < f < 1 for f in value):
            raise ValueError("every fraction must be in (0, 1)")
        return value

    @field_validator("noise_sigmas")
    @classmethod
    def _sigmas(cls, value):
        if any(s <= 0 for s in value):
            raise ValueError("every sigma must be > 0")
        return value


class SENNStudy(ClassifierStudy):
    """A self-explaining network against LIME and Integrated Gradients."""

    kind: Literal["senn"]
    train: SENNTrain
    attribute: SENNAttribute
    evaluate: SENNEvaluate


def train(name: str, study, params, run) -> dict:
    """The SENN classifier: the conceptizer's reconstruction epochs (:func:`pretrain`), then
    the joint loss (:func:`senn_loss`)."""
    return train_classifier_study(name, study, params, run, loss_fn(study), pretrain=pretrain)


def loss_fn(study):
    cfg = study.train

    def senn_objective(model, pixels, labels):
        return senn_loss(model.net, model.normalize(pixels), labels, cfg.reconstruction_weight, cfg.sparsity_weight,
                         cfg.robustness_weight, cfg.robustness_images)

    return senn_objective


def pretrain(model, train_pixels, study, seed, run) -> None:
    """Reconstruction-only epochs of the conceptizer before the joint loss
    (``train.conceptizer_pretrain_epochs``; 0 = the study's recipe)."""
    cfg = study.train
    if cfg.conceptizer_pretrain_epochs:
        with torch.no_grad():
            normalized = model.normalize(train_pixels)
        pretrain_conceptizer(model.net, normalized, cfg.conceptizer_pretrain_epochs, cfg.conceptizer_pretrain_lr,
                             cfg.batch_size, seed, on_epoch=lambda epoch, record: run.log_metrics(record, step=epoch))


@torch.no_grad()
def senn_relevance(model, pixels, targets, **_):
    """SENN's explanation of ``targets``: θ_c(x), as [N, 1, k] (a one-row "map")."""
    relevances = model.net.relevances(model.normalize(pixels))
    return relevances[torch.arange(len(targets)), targets].unsqueeze(1).numpy().astype(np.float32)


def method_names(study) -> tuple[str, ...]:
    """SENN's own relevances, then the post-hoc methods of the study."""
    return ("senn", *study.attribute.methods)


def method_options(study, method):
    """The typed options of ``method`` in the SENN study (its section; None for SENN's own)."""
    return study.attribute.options_for(method) if method != "senn" else None


def attribute(name: str, study, params, run) -> None:
    model, test, pixels = load_model_and_test(name, study, study.attribute.n_images)
    maps = {}
    for method in method_names(study):
        rows = explain_and_store(name, study, params, run, method, method_options(study, method),
                                 explain=senn_relevance if method == "senn" else None)
        maps[method] = rows["attribution"]
    all_pixels = torch.from_numpy(test["images"]).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        concepts = torch.cat([model.net.conceptizer.encode(model.normalize(chunk))
                              for chunk in all_pixels.split(256)]).numpy()
    figure = f"data/attributions/{name}/prototypes.png"
    concept_prototypes_figure(test["images"], concepts, figure)
    run.log_artifact(figure)
    predicted = predict_proba(model, pixels).argmax(-1).numpy()
    class_names = list(_class_names(study))
    firsts = [int(np.flatnonzero(predicted == c)[0]) for c in range(len(class_names)) if (predicted == c).any()]
    with torch.no_grad():
        reconstructions = model.net.explain(model.normalize(pixels[firsts])).reconstruction * model.std + model.mean
    figure = f"data/attributions/{name}/explanations_per_class.png"
    per_class_explanations_figure(test["images"][firsts], reconstructions.permute(0, 2, 3, 1).numpy(),
                                  {m: maps[m][firsts] for m in study.attribute.methods},
                                  maps["senn"][firsts][:, 0], [class_names[predicted[i]] for i in firsts], figure)
    run.log_artifact(figure)


def _class_names(study):
    return DATASETS[study.dataset].classes


def _removal(model, pixels, maps, masks_fn, fractions, fill):
    """Mean confidence drop and flip rate of the predicted class per removal fraction;
    ``masks_fn(i, |map_i|, fraction)``: features are ranked by the magnitude of their
    attribution (the study: "highest absolute attribution")."""
    probs = predict_proba(model, pixels)
    predicted = probs.argmax(-1)
    p0 = probs[torch.arange(len(pixels)), predicted]
    result = {}
    for fraction in fractions:
        masks = torch.from_numpy(np.stack([masks_fn(i, np.abs(maps[i]), fraction) for i in range(len(pixels))]))
        removed = torch.where(masks.unsqueeze(1), fill.view(1, 3, 1, 1), pixels)
        new = predict_proba(model, removed)
        result[f"confidence_drop_top_{fraction:g}"] = round(float((p0 - new[torch.arange(len(pixels)), predicted]).mean()), 6)
        result[f"flip_rate_top_{fraction:g}"] = round(float((new.argmax(-1) != predicted).float().mean()), 6)
    return result


def _lime_stability(model, clean_maps, clean_segments, cfg, lime_cfg, seed):
    """A function (noisy images, targets) -> Jaccard of the top ``top_superpixels`` of the
    clean and the noisy LIME explanation, per image.

    ``resegment`` (the study): LIME runs on each noisy image as on any image, segmenting it
    anew; the two top-k superpixel sets are compared as pixel sets. ``fixed``: the noisy
    copy is explained on the clean image's superpixels and the superpixel ids are compared."""
    k = cfg.top_superpixels
    if cfg.lime_stability_segments == "fixed":
        clean_top = [top_segments(segment_weights(m, s), k) for m, s in zip(clean_maps, clean_segments)]

        def fixed(noisy, targets):
            maps = METHODS["lime"](model, noisy, targets, seed=seed, segments=clean_segments, options=lime_cfg)
            return [jaccard(clean_top[i], top_segments(segment_weights(maps[i], clean_segments[i]), k))
                    for i in range(len(noisy))]

        return fixed
    clean_top = [top_segment_pixels(m, s, k) for m, s in zip(clean_maps, clean_segments)]

    def resegment(noisy, targets):
        noisy_segments = [slic_segments(image, lime_cfg.n_segments) for image in noisy]
        maps = METHODS["lime"](model, noisy, targets, seed=seed, segments=noisy_segments, options=lime_cfg)
        return [mask_jaccard(clean_top[i], top_segment_pixels(maps[i], noisy_segments[i], k))
                for i in range(len(noisy))]

    return resegment


@torch.no_grad()
def _reconstruction_error(model, pixels) -> dict:
    """SENN's autoencoder on the explained images: reconstruction MSE (normalised input)
    against the MSE of reconstructing every image as the dataset mean (0 after
    normalisation): a conceptizer that learnt nothing stays at the latter."""
    x = model.normalize(pixels)
    reconstruction = model.net.explain(x).reconstruction
    return {"reconstruction_mse": round(float(((reconstruction - x) ** 2).mean()), 6),
            "reconstruction_mse_of_the_mean": round(float((x ** 2).mean()), 6)}


def evaluate(name: str, study, params, run) -> dict:
    cfg = study.evaluate
    post_hoc = study.attribute.methods
    lime_cfg = study.attribute.options_for("lime") if "lime" in post_hoc else None
    model, test, _ = load_model_and_test(name, study)
    frames = {m: read_attributions(attribution_path("data/attributions", name, study.model, m))
              for m in method_names(study)}
    n_stored = len(frames["senn"])
    pixels = torch.from_numpy(test["images"][:n_stored]).permute(0, 3, 1, 2).float() / 255.0
    results = {m: {} for m in method_names(study)}

    # concept ablation on the entire test split, as the study ("for SENN, ablation was
    # performed on the entire test set"): one forward pass per concept, no explainer
    all_pixels = torch.from_numpy(test["images"]).permute(0, 3, 1, 2).float() / 255.0
    chunks = [concept_ablation_drops(model.net, model.normalize(chunk)) for chunk in all_pixels.split(500)]
    drops, relevances = (np.concatenate(parts) for parts in zip(*chunks))
    correlation = ablation_correlation(relevances, drops)
    results["senn"].update(faithfulness_correlation_mean=round(float(np.nanmean(correlation)), 6),
                           faithfulness_correlation_std=round(float(np.nanstd(correlation)), 6))

    n_removal = min(cfg.n_removal_images, n_stored)
    n_stab = min(cfg.n_stability_images, n_stored)
    fill = model.mean.flatten()  # zero on the normalised input
    # LIME's superpixels of the leading test images, computed once for removal and stability
    segments = [slic_segments(image, lime_cfg.n_segments) for image in pixels[:max(n_removal, n_stab)]] \
        if lime_cfg is not None else None
    for method in post_hoc:   # the study: LIME's top superpixels, IG's (every other map's) top pixels
        masks_fn = (lambda i, m, f: removal_masks_segments(m, segments[i], f)) if method == "lime" \
            else (lambda i, m, f: removal_masks_pixels(m, f))
        results[method].update(_removal(model, pixels[:n_removal], maps_of(frames[method]), masks_fn,
                                        cfg.removal_fractions, fill))

    clean = pixels[:n_stab]
    targets = torch.tensor(frames["senn"].target.to_numpy()[:n_stab])
    clean_maps = {m: maps_of(frames[m])[:n_stab] for m in method_names(study)}
    lime_stability = _lime_stability(model, clean_maps["lime"], segments[:n_stab], cfg, lime_cfg, params.seed) \
        if lime_cfg is not None else None
    # the study's stability measure per method: LIME the Jaccard of its top superpixels, IG
    # (and every other map) the SSIM of the heatmaps, SENN the cosine of its relevances
    columns = {m: f"{m}_jaccard" if m == "lime" else f"{m}_ssim" for m in post_hoc}
    rows, changes = [], {}
    for level, sigma in enumerate(cfg.noise_sigmas):
        noisy = add_noise(clean, sigma, seed=params.seed * 1000 + level)
        changes[f"{sigma:g}"] = int((predict_proba(model, noisy).argmax(-1) != targets).sum())
        start = time.perf_counter()
        row = {"sigma": sigma}
        for method in post_hoc:
            if method == "lime":
                row[columns[method]] = float(np.mean(lime_stability(noisy, targets)))
            else:
                noisy_maps = METHODS[method](model, noisy, targets, seed=params.seed, image_indices=list(range(n_stab)),
                                             options=study.attribute.options_for(method))
                row[columns[method]] = float(np.mean([heatmap_ssim(clean_maps[method][i], noisy_maps[i])
                                                      for i in range(n_stab)]))
        senn_noisy = senn_relevance(model, noisy, targets)
        row["senn_cosine"] = float(np.nanmean([cosine(clean_maps["senn"][i, 0], senn_noisy[i, 0])
                                               for i in range(n_stab)]))
        row["prediction_changes"] = changes[f"{sigma:g}"]
        rows.append(row)
        log.info("noise sigma %g: %s (%.1f s)", sigma, rows[-1], time.perf_counter() - start)
    table = pd.DataFrame(rows)
    for method, column in (*columns.items(), ("senn", "senn_cosine")):
        results[method][f"stability_{column.rsplit('_', 1)[1]}_mean"] = round(float(table[column].mean()), 6)
        for sigma, value in zip(table.sigma, table[column]):
            results[method][f"stability_sigma_{sigma:g}"] = round(float(value), 6)
    results["senn"].update(_reconstruction_error(model, pixels))
    results["prediction_changes"] = changes
    results["n_images"] = {"ablation": len(all_pixels), "removal": n_removal, "stability": n_stab}
    write_csv(f"metrics/plots/{name}/stability.csv", table)
    figure = f"data/reports/{name}/stability.png"
    stability_figure(table, figure)
    run.log_artifact(figure)
    for method, values in results.items():
        if method in method_names(study):
            run.log_metrics({f"{k}.{method}": v for k, v in values.items()})
    return results


def reliability(name: str, study, params, cfg, run):
    """SENN study: localisation of LIME, IG and the controls against the twin's object
    (= cue) masks; per-image confidence drop when the top ``removal_fractions`` of the
    pixels by |attribution| take the mean colour (``removal_drop:<fraction>``, the
    study's removal on pixels for every method); randomisation of LIME, IG and SENN's own
    relevances θ (a k-vector: its Spearman is over the concepts)."""
    model, test, _ = load_model_and_test(name, study)
    frames = {m: read_attributions(attribution_path("data/attributions", name, study.model, m))
              for m in method_names(study)}
    first = frames["senn"]
    ids, targets = list(first.image_id), torch.tensor(first.target.to_numpy())
    pixels = to_tensor(test["images"][: len(ids)])
    maps = with_controls({m: maps_of(f) for m, f in frames.items() if m != "senn"}, pixels, targets,
                         cfg.controls, params.seed)
    n = min(cfg.randomisation.n_images, len(ids))
    explainers = {m: registry_explainer(m, pixels[:n], targets[:n], params.seed, method_options(study, m))
                  for m in maps}
    explainers["senn"] = lambda m, other=None: senn_relevance(m, pixels[:n], targets[:n] if other is None else other)
    rows, sections, plots = classification_checks(model, pixels, targets, ids, maps, explainers, study.dataset,
                                                  test["ids"], cfg, params.seed,
                                                  len(dataset_classes(study.dataset)),
                                                  excluded=excluded_methods(cfg, name, explainers), study=name)
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


KIND = register_study_kind(StudyKind(
    name="senn", schema=SENNStudy, train=train, attribute=attribute, evaluate=evaluate, reliability=reliability,
    info=StudyInfo(
        "SENN against LIME and Integrated Gradients on CIFAR-10",
        "A self-explaining neural network (concepts h(x), relevances θ(x)) is trained on CIFAR-10 and "
        "compared with LIME and Integrated Gradients. Faithfulness is measured by concept ablation and "
        "by removing the top pixels, stability by explaining noisy copies of each image.",
        Citation("Rampazzo", "n.d.", "Comparing Ante-hoc and Post-hoc Interpretability Methods: SENN, LIME, and "
                 "Integrated Gradients on CIFAR-10", "senn-cifar10.md"), "cifar10", "senn"),
    scores="concept ablation, removal of the top pixels and stability under noise"))
