"""SENN: aggregation and the loss terms on hand-built models (source:
shared/sources/senn-cifar10.md, "I. A" and "II. Methodology"; Alvarez-Melis & Jaakkola 2018, eq. 6)."""

import pytest
import torch
from torch import nn

from xaibench.models import build_model
from xaibench.models.senn import SENN
from xaibench.studies.senn import robustness_loss, senn_loss


class LinearConceptizer(nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.weight = weight  # [k, D]

    def encode(self, x):
        return x.flatten(1) @ self.weight.T

    def decode(self, h):
        return (h @ self.weight).view(-1, 1, 2, 2)


class ConstantParameterizer(nn.Module):
    def __init__(self, theta):
        super().__init__()
        self.theta = nn.Parameter(theta)  # [C, k]

    def forward(self, x):
        return self.theta.flatten().expand(len(x), -1)


class InputScaledParameterizer(ConstantParameterizer):
    def forward(self, x):  # θ(x) = θ · sum(x): relevances change with the input
        return self.theta.flatten() * x.flatten(1).sum(1, keepdim=True)


WEIGHT = torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, -1.0]])  # k = 2 concepts of D = 4 pixels
THETA = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.0, 3.0]])           # C = 3 classes


def test_logits_are_relevance_weighted_concepts():
    model = SENN(LinearConceptizer(WEIGHT), ConstantParameterizer(THETA), 3, 2)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # h = (1 + 6, 2 - 4) = (7, -2)
    torch.testing.assert_close(model(x), torch.tensor([[7 - 4.0, -7 - 1.0, -6.0]]))
    out = model.explain(x)
    torch.testing.assert_close(out.concepts, torch.tensor([[7.0, -2.0]]))
    assert out.relevances.shape == (1, 3, 2)


def test_robustness_is_zero_for_constant_relevances_and_linear_concepts():
    model = SENN(LinearConceptizer(WEIGHT), ConstantParameterizer(THETA), 3, 2)
    x = torch.randn(5, 1, 2, 2)
    assert robustness_loss(model, x).item() == pytest.approx(0.0, abs=1e-6)


def test_robustness_by_hand_over_all_classes():
    # θ(x) = θ·s, s = Σx. f_c = s θ_c·h, ∇f_c = θ_c·h · 1 + s θ_cᵀ W, θ_c(x)ᵀ J h = s θ_cᵀ W,
    # so row c of the residual is (θ_c·h) · 1 over the 4 pixels, and its Frobenius norm over
    # the three classes is 2 · sqrt(Σ_c (θ_c·h)²).
    model = SENN(LinearConceptizer(WEIGHT), InputScaledParameterizer(THETA), 3, 2)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # h = (7, -2); θ·h = (3, -8, -6)
    assert robustness_loss(model, x).item() == pytest.approx(2 * (9 + 64 + 36) ** 0.5, rel=1e-6)
    # a batch is the mean of its images: the second image doubles h and so the residual
    x2 = torch.cat([x, 2 * x])
    assert robustness_loss(model, x2).item() == pytest.approx(1.5 * 2 * 109 ** 0.5, rel=1e-6)
    # robustness_images = 1: the term on the first image of the batch alone
    _, terms, _ = senn_loss(model, x2, torch.tensor([0, 1]), 1.0, 0.0, 1.0, robustness_images=1)
    assert terms["robustness"] == pytest.approx(2 * 109 ** 0.5, rel=1e-6)


def direct_robustness(model, x):
    """The definition itself: the logits' and the concepts' full input Jacobians (one reverse
    pass per output), ‖J_x f − θᵀ J_x h‖_F per image, averaged."""
    x = x.detach().requires_grad_(True)
    out = model.explain(x)

    def jacobian(outputs):
        return torch.stack([torch.autograd.grad(outputs[:, m].sum(), x, create_graph=True)[0].flatten(1)
                            for m in range(outputs.shape[1])], 1)

    residual = jacobian(out.logits) - torch.einsum("nck,nkd->ncd", out.relevances, jacobian(out.concepts))
    return residual.flatten(1).norm(dim=1).mean()


def test_robustness_through_the_parameterizer_equals_the_definition_on_the_twin_senn():
    """robustness_loss uses J_x f − θᵀ J_x h = Σ_k h_k ∇_x θ_k: the value and its gradients
    with respect to both networks' weights agree with the two full Jacobians'."""
    torch.manual_seed(0)
    model = build_model("senn", 10, 32)
    x = torch.rand(4, 3, 32, 32)
    ours, direct = robustness_loss(model, x), direct_robustness(model, x)
    assert ours.item() == pytest.approx(direct.item(), rel=1e-4)
    assert ours.item() > 0
    weights = [model.conceptizer.encoder[0].weight, model.parameterizer[0].weight]
    for a, b in zip(torch.autograd.grad(ours, weights), torch.autograd.grad(direct, weights)):
        assert b.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6 * float(b.abs().max()))


def test_loss_terms_and_weights():
    model = SENN(LinearConceptizer(WEIGHT), ConstantParameterizer(THETA), 3, 2)
    x = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # h = (1, 0); x̂ = [1, 0, 2, 0]
    total, terms, _ = senn_loss(model, x, torch.tensor([0]), reconstruction_weight=1.0, sparsity_weight=0.25,
                                robustness_weight=3.0)
    assert terms["reconstruction"] == pytest.approx(1.0)      # (2 - 0)² / 4
    assert terms["sparsity"] == pytest.approx(0.5)            # mean |(1, 0)|
    assert terms["robustness"] == pytest.approx(0.0, abs=1e-6)
    # each weight weighs its own term: the reconstruction counts in full, not scaled by xi
    expected = terms["classification"] + 1.0 * 1.0 + 0.25 * 0.5 + 3.0 * 0.0
    assert total.item() == pytest.approx(expected)


def test_registered_senn_trains_a_step():
    torch.manual_seed(0)
    model = build_model("senn", 10, 32)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    total, terms, logits = senn_loss(model, x, y, reconstruction_weight=1.0, sparsity_weight=2e-5,
                                     robustness_weight=1e-4)
    total.backward()
    assert logits.shape == (4, 10) and terms["robustness"] > 0
    assert all(p.grad is not None for p in model.parameters())


def test_conceptizer_pretraining_learns_to_reconstruct():
    """Images of one flat colour each carry 3 numbers: 5 concepts can keep them, so the
    reconstruction MSE must fall far below that of the mean image (here 1.08; measured 0.27)."""
    from xaibench.studies.senn import pretrain_conceptizer

    torch.manual_seed(0)
    model = build_model("senn", 10, 16)
    colours = torch.randn(256, 3, 1, 1)
    images = colours.expand(256, 3, 16, 16).contiguous()
    history = pretrain_conceptizer(model, images, epochs=30, lr=3e-3, batch_size=32, seed=0)
    assert len(history) == 30 and history[-1] < 0.3 * float((images ** 2).mean()) < history[0]
