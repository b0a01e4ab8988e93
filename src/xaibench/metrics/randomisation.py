"""The scores of the randomisation checks (:mod:`xaibench.explain.randomisation` runs the
models): eMPRT's complexity ratio and the random-logit SSIM, declared here for the
reliability layer.

* eMPRT (Hedström, Bommer, Wickstrøm, Samek, Lapuschkin & Höhne 2023, "Sanity checks
  revisited: an exploration to repair the model parameter randomisation test", XAI in Action
  workshop, NeurIPS, sec. 4): ``H(ê) / H(e)``, the discrete entropy of the fully randomised
  model's map over the trained model's. Quantus 0.6's ``EfficientMPRT`` scores the same ratio
  with the same entropy (``discrete_entropy``, tests/metrics/test_randomisation_scores.py).
* random logit (Sixt, Granz & Landgraf 2020, "When explanations lie", ICML, sec. 5): the SSIM
  of the maps of the explained class and of a random other class.
* max-sensitivity (Yeh, Hsieh, Suggala, Inouye & Ravikumar 2019, "On the (in)fidelity and
  sensitivity of explanations", NeurIPS, Def. 3.1): ``max_{‖δ‖∞ ≤ r} ‖Φ(x + δ) − Φ(x)‖ / ‖Φ(x)‖``,
  the maximum over sampled δ (captum's ``sensitivity_max``, Frobenius norms).
* sMPRT (Hedström et al. 2023, sec. 4): the MPRT's Spearman rank correlation between the
  trained and the fully randomised model's maps, each map first averaged over noisy copies of
  the input (SmoothGrad's denoising), so that a noisy method is not credited with the noise.
"""

from __future__ import annotations

import numpy as np

from xaibench.metrics.registry import declare_metric

declare_metric("eMPRT", higher_is_better=True,
               definition=("Efficient MPRT: entropy of the map of the fully randomised model over the trained "
                           "model's; above 1 when the map turns to noise with the model (Hedström et al. 2023)"), bounds=(0, None))
declare_metric("max_sensitivity", higher_is_better=False,
               definition=("Max-sensitivity: the largest relative change of the map under small uniform input "
                           "noise (Yeh et al. 2019)"), bounds=(0, None))
declare_metric("sMPRT", higher_is_better=False,
               definition=("Smooth MPRT: Spearman correlation of |map| between the trained and the fully "
                           "randomised model, maps averaged over noisy inputs first (Hedström et al. 2023)"), bounds=(-1, 1))
declare_metric("random_logit", higher_is_better=False,
               definition=("Random-logit test: SSIM between the maps of the explained class and of a random other "
                           "class; 1 when the map ignores the class (Sixt, Granz & Landgraf 2020)"), bounds=(-1, 1))


def discrete_entropy(maps: np.ndarray, n_bins: int = 100) -> np.ndarray:
    """Per map [N, ...], the Shannon entropy (nats) of the histogram of its values in
    ``n_bins`` equal-width bins over the map's own range (np.histogram): 0 for a constant map."""
    from scipy.stats import entropy  # lazy: ~0.5 s at import, which every stage paid
    return np.array([entropy(np.histogram(np.ravel(m), bins=n_bins)[0]) for m in maps], np.float64)


def efficient_mprt(original: np.ndarray, randomised: np.ndarray, n_bins: int = 100) -> np.ndarray:
    """eMPRT per image: ``H(randomised map) / H(original map)`` (:func:`discrete_entropy`);
    NaN where the original map is constant (no complexity to compare with)."""
    before, after = discrete_entropy(original, n_bins), discrete_entropy(randomised, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(before > 0, after / np.where(before > 0, before, 1), np.nan)


def max_sensitivity(original: np.ndarray, perturbed: np.ndarray) -> np.ndarray:
    """Per image, ``max_j ‖perturbed[j] − original‖_F / ‖original‖_F`` (original [N, H, W],
    perturbed [N, J, H, W], the maps of J noisy copies); NaN for an all-zero original map
    (captum divides by 1 there)."""
    original = np.asarray(original, np.float64).reshape(len(original), 1, -1)
    perturbed = np.asarray(perturbed, np.float64).reshape(original.shape[0], -1, original.shape[-1])
    norm = np.linalg.norm(original[:, 0], axis=-1)
    change = np.linalg.norm(perturbed - original, axis=-1).max(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, change / np.where(norm > 0, norm, 1), np.nan)
