"""SENN's composite loss (Alvarez-Melis & Jaakkola 2018, eq. 6; the study's setting in
``shared/sources/senn-cifar10.md``, "II. Methodology": 10 epochs, 5 concepts, lr 2e-4,
sparsity ξ = 2e-5, robustness λ = 1e-4, concept (reconstruction) weight 1):

    L = L_y(f(x), y) + w_rob · L_θ(f) + w_rec · L_rec(x, x̂) + w_sp · L_sp(h)

* L_y: cross-entropy of the aggregated logits;
* L_rec: the conceptizer's reconstruction MSE ``mean (x − x̂)²`` (weight ``reconstruction_weight``);
* L_sp: the concepts' sparsity penalty ``mean |h(x)|`` (weight ``sparsity_weight``, the study's ξ);
* L_θ: robustness (weight ``robustness_weight``, the study's λ),
  ``mean_n ‖J_x f(x) − θ(x)ᵀ J_x h(x)‖_F`` over *all* C outputs: J_x f is the [C, D]
  Jacobian of the logits, θ(x) the [C, k] relevances, J_x h the [k, D] concept Jacobian;
  the norm is the Frobenius norm of the [C, D] residual per image (the 2-norm of its
  flattening), averaged over the batch. It is zero exactly when f behaves locally like a
  linear model in the concepts with constant relevances, which makes θ an explanation.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


def input_jacobian(outputs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[N, M, D]: the gradient of every output column of ``outputs`` [N, M] w.r.t. its own
    image of ``x`` (images are independent), differentiable (create_graph).

    One reverse pass per output column. Measured on the CPU for the twin SENN (batch 64,
    C + k = 15 columns): this loop 1.8-3.0 s per forward+backward, against 5-9 s for one
    vmapped pass (``is_grads_batched``) and 5.9-6.6 s for one pass over a batch replicated
    15 times, so the loop is kept."""
    return torch.stack([torch.autograd.grad(outputs[:, m].sum(), x, create_graph=True)[0].flatten(1)
                        for m in range(outputs.shape[1])], dim=1)


def robustness_loss(model, x: torch.Tensor) -> torch.Tensor:
    """``mean_n ‖J_x f(x) − θ(x)ᵀ J_x h(x)‖_F`` over all classes (module docstring)."""
    x = x.detach().requires_grad_(True)
    out = model.explain(x)
    num_classes = out.logits.shape[1]
    jacobian = input_jacobian(torch.cat([out.logits, out.concepts], 1), x)       # [N, C + k, D]
    jacobian_f, jacobian_h = jacobian[:, :num_classes], jacobian[:, num_classes:]
    residual = jacobian_f - torch.einsum("nck,nkd->ncd", out.relevances, jacobian_h)  # [N, C, D]
    return residual.flatten(1).norm(dim=1).mean()


def senn_loss(model, x: torch.Tensor, y: torch.Tensor, reconstruction_weight: float, sparsity_weight: float,
              robustness_weight: float, robustness_images: int | None = None):
    """Total loss and its terms (floats, for logging) for one batch; also the logits.
    ``robustness_images``: the robustness term on the batch's first images only (the batch
    is shuffled, so an unbiased estimate of its batch mean; the term's C + k reverse passes
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
