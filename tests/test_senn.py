"""SENN: aggregation and the loss terms on hand-built models."""

import pytest
import torch
from torch import nn

from xaibench.models import build_model
from xaibench.models.senn import SENN
from xaibench.training.senn import robustness_loss, senn_loss


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
    assert robustness_loss(model, x, torch.tensor([0, 1, 2, 0, 1])).item() == pytest.approx(0.0, abs=1e-6)


def test_robustness_by_hand_when_relevances_depend_on_the_input():
    # θ(x) = θ·s, s = Σx. f_c = s θ_c·h, ∇f_c = θ_c·h · 1 + s θ_cᵀ W, θ_c(x)ᵀ J h = s θ_cᵀ W,
    # so the residual is (θ_c·h) · 1 over the 4 pixels: norm = 2 |θ_c·h|.
    model = SENN(LinearConceptizer(WEIGHT), InputScaledParameterizer(THETA), 3, 2)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # h = (7, -2); class 0: θ·h = 7 - 4 = 3
    assert robustness_loss(model, x, torch.tensor([0])).item() == pytest.approx(6.0, rel=1e-6)


def test_loss_terms_and_weights():
    model = SENN(LinearConceptizer(WEIGHT), ConstantParameterizer(THETA), 3, 2)
    x = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # h = (1, 0); x̂ = [1, 0, 2, 0]
    total, terms, _ = senn_loss(model, x, torch.tensor([0]), xi=0.5, lam=1.0, sparsity=2.0)
    assert terms["reconstruction"] == pytest.approx(1.0)      # (2 - 0)² / 4
    assert terms["sparsity"] == pytest.approx(0.5)            # mean |(1, 0)|
    assert terms["robustness"] == pytest.approx(0.0, abs=1e-6)
    expected = terms["classification"] + 0.5 * (1.0 + 2.0 * 0.5)
    assert total.item() == pytest.approx(expected)


def test_registered_senn_trains_a_step():
    torch.manual_seed(0)
    model = build_model("senn", 10, 32)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    total, terms, logits = senn_loss(model, x, y, xi=2e-5, lam=1e-4, sparsity=1.0)
    total.backward()
    assert logits.shape == (4, 10) and terms["robustness"] > 0
    assert all(p.grad is not None for p in model.parameters())
