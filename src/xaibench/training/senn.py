"""SENN's composite loss (Alvarez-Melis & Jaakkola 2018, eq. 6):

    L = L_y(f(x), y) + λ · L_θ(f) + ξ · L_h(x, x̂)

* L_y: cross-entropy of the aggregated logits;
* L_h: concept loss, reconstruction MSE ``mean (x − x̂)²`` plus a sparsity penalty
  ``sparsity · mean |h(x)|``;
* L_θ: robustness, ``mean_n ‖∇_x f_c(x) − θ_c(x)ᵀ J_x h(x)‖₂`` for the true class c:
  zero exactly when f behaves locally like a linear model in the concepts with
  constant relevances, which is what makes θ an explanation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def robustness_loss(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``mean_n ‖∇_x f_c(x) − θ_c(x)ᵀ J_x h(x)‖₂`` (c = y), differentiable (create_graph)."""
    x = x.detach().requires_grad_(True)
    out = model.explain(x)
    rows = torch.arange(len(y))
    target_logit = out.logits[rows, y].sum()
    grad_f = torch.autograd.grad(target_logit, x, create_graph=True)[0].flatten(1)        # [N, D]
    jacobian_h = torch.stack([
        torch.autograd.grad(out.concepts[:, j].sum(), x, create_graph=True)[0].flatten(1)
        for j in range(out.concepts.shape[1])
    ], dim=1)                                                                                # [N, k, D]
    theta_c = out.relevances[rows, y]                                                        # [N, k]
    residual = grad_f - torch.einsum("nk,nkd->nd", theta_c, jacobian_h)
    return residual.norm(dim=1).mean()


def senn_loss(model, x: torch.Tensor, y: torch.Tensor, xi: float, lam: float, sparsity: float):
    """Total loss and its terms (floats, for logging) for one batch; also the logits."""
    out = model.explain(x)
    classification = F.cross_entropy(out.logits, y)
    reconstruction = F.mse_loss(out.reconstruction, x)
    sparse = out.concepts.abs().mean()
    robustness = robustness_loss(model, x, y) if lam > 0 else torch.zeros(())
    total = classification + lam * robustness + xi * (reconstruction + sparsity * sparse)
    terms = {"classification": classification.item(), "reconstruction": reconstruction.item(),
             "sparsity": sparse.item(), "robustness": robustness.item(), "total": total.item()}
    return total, terms, out.logits
