"""The study's own faithfulness metrics against reference implementations on the same model
and maps: deletion curves and DAUC against Quantus 0.6's PixelFlipping, average drop and
increase in confidence against pytorch-grad-cam's DropInConfidence / IncreaseInConfidence.

(Insertion AUC has no reference implementation to install: RISE's authors' code is a
notebook class, and neither Quantus nor captum has the blurred-canvas insertion; it is
checked by hand in test_faithfulness.py and its curve shares the deletion's engine.)
"""

import warnings

import numpy as np
import pytest
import torch

from xaibench.explain.perturbation import deletion_insertion_curves
from xaibench.metrics.faithfulness import (area_under_curve, average_drop, collect_evidence, explanation_map,
                                           increase_in_confidence)

SIZE = 12


class PixelLogits(torch.nn.Module):
    def __init__(self, channels=3, seed=0):
        super().__init__()
        self.weights = torch.randn(channels, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 0.3

    def forward(self, x):
        logit = (x * self.weights).flatten(1).sum(1)
        return torch.stack([torch.zeros_like(logit), logit], 1)


def test_deletion_curve_equals_quantus_pixel_flipping(monkeypatch):
    """One-channel images (Quantus's features are channel values, xaibench's pixels), baseline
    0, maps without ties (Quantus sorts with an unstable argsort). Quantus's curve is the
    scores after each step, xaibench's also the unperturbed score ``d_0``; Quantus's AUC is
    the trapezoid with dx = 1 over its S points, so ``quantus = S·DAUC − (d_0 + d_1)/2``."""
    quantus = pytest.importorskip("quantus")
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)     # numpy 2.4 removed it; Quantus calls it
    rng = np.random.default_rng(0)
    model = PixelLogits(channels=1).eval()
    x = rng.random((4, 1, SIZE, SIZE)).astype(np.float32)
    y = np.array([1, 0, 1, 1])
    maps = rng.random((4, SIZE, SIZE)).astype(np.float32)
    steps = 16
    kwargs = dict(model=model, x_batch=x, y_batch=y, a_batch=maps[:, None], softmax=True, device="cpu", batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curves = np.asarray(quantus.PixelFlipping(features_in_step=SIZE * SIZE // steps, perturb_baseline=0.0,
                                                  disable_warnings=True)(**kwargs))
        aucs = np.asarray(quantus.PixelFlipping(features_in_step=SIZE * SIZE // steps, perturb_baseline=0.0,
                                                return_auc_per_sample=True, disable_warnings=True)(**kwargs))
    pixels = torch.from_numpy(x)
    ours = deletion_insertion_curves(model, pixels, maps, torch.from_numpy(y), pixels, torch.zeros_like(pixels),
                                     steps, batch_size=7)
    np.testing.assert_allclose(ours[:, 1:], curves, atol=1e-6)
    np.testing.assert_allclose(steps * area_under_curve(ours) - (ours[:, 0] + ours[:, 1]) / 2, aucs, atol=1e-5)


def test_average_drop_and_increase_in_confidence_equal_pytorch_grad_cams():
    """pytorch-grad-cam multiplies the input by the CAM and reports the score's change:
    DropInConfidence = max(0, Y − O) (absolute), IncreaseInConfidence = 1[O > Y]. Given
    xaibench's weight L (positive part of the map over its maximum), AD = 100·drop / Y
    (Grad-CAM++'s relative drop) and IIC = 100·increase, image by image."""
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    rng = np.random.default_rng(1)
    model = PixelLogits().eval()
    pixels = torch.rand(6, 3, SIZE, SIZE)
    maps = rng.normal(size=(6, SIZE, SIZE)).astype(np.float32)
    targets = torch.tensor([1, 0, 1, 0, 1, 1])
    evidence = collect_evidence(model, pixels, maps, targets, 2, 1.0, torch.zeros(3), 8)
    weights = np.stack([(explanation_map(torch.ones(1, SIZE, SIZE), m)[0]).numpy() for m in maps])
    cam_targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets]
    drop = DropInConfidence()(pixels, weights[:, None], cam_targets, model)
    increase = IncreaseInConfidence()(pixels, weights[:, None], cam_targets, model)
    np.testing.assert_allclose(average_drop(evidence), 100 * drop / evidence.full_scores, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(increase_in_confidence(evidence), 100 * increase)
    assert 0 < increase.sum() < len(increase)          # both outcomes occur on these maps
