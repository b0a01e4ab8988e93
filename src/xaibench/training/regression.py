"""GAD support regression models (Mazini Rodrigues, Boutry & Najman 2024; source
``shared/sources/gad-gradient-artificial-distancing.md``, section 4.2 and section 6).

Initialised from the original classifier's weights, trained with MSE (softmax replaced
by the identity: the network's raw outputs regress the targets) towards the original
logits with the other class's logit lowered by α (:func:`support_regression_targets`).
The source trains them "as regression problems, aiming to precisely obtain the altered
artificial activations" (10 epochs, Adam, lr 4e-5 on 224 px ImageNet-initialised
networks); :func:`support_fit` measures whether a support model did.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from xaibench.explain.gad import support_regression_targets

log = logging.getLogger(__name__)


@torch.no_grad()
def logits_of(model: nn.Module, pixels: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    model.eval()
    return torch.cat([model(chunk) for chunk in pixels.split(batch_size)])


def train_support_model(original: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, alpha: float, epochs: int,
                        lr: float, batch_size: int, seed: int, on_epoch=None,
                        original_logits: torch.Tensor | None = None) -> nn.Module:
    """A copy of ``original`` fine-tuned (Adam, MSE) on the α-shifted logits; returns it in
    eval mode. ``original_logits``: :func:`logits_of` ``original`` on ``pixels``, where the
    caller has them already."""
    torch.manual_seed(seed)
    before = logits_of(original, pixels) if original_logits is None else original_logits
    targets = support_regression_targets(before, labels, alpha)
    model = copy.deepcopy(original)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(pixels, targets), batch_size=batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        model.train()
        total, loss_sum = 0, 0.0
        for x, t in tqdm(loader, desc=f"alpha {alpha:g} epoch {epoch + 1}/{epochs}", leave=False, disable=None):
            loss = nn.functional.mse_loss(model(x), t)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(x)
            total += len(x)
        log.info("alpha %g epoch %d/%d mse %.4f", alpha, epoch + 1, epochs, loss_sum / total)
        if on_epoch:
            on_epoch(epoch + 1, {"mse": loss_sum / total})
    return model.eval()


@torch.no_grad()
def support_fit(original: nn.Module, support: nn.Module, pixels: torch.Tensor, labels: torch.Tensor,
                alpha: float, original_logits: torch.Tensor | None = None) -> dict:
    """How well a support model reproduces its α-shifted targets on its training images
    (both models in eval mode):

    * ``mse``: mean squared error of the support's logits against the targets;
    * ``mse_untrained``: the same for an unchanged copy of the original (α²/2 for two
      logits, one shifted by α): the level a support that learnt nothing stays at;
    * ``other_logit_shift``: mean over images of original − support logit of the other
      class (the asked shift is α); ``own_logit_change``: mean |change| of the image's
      own-class logit (the targets keep it, so it should stay near 0);
    * ``shift_fraction``: other_logit_shift / α (NaN for α = 0).

    ``original_logits``: as :func:`train_support_model`'s.
    """
    before = logits_of(original, pixels) if original_logits is None else original_logits
    after = logits_of(support, pixels)
    targets = support_regression_targets(before, labels, alpha)
    rows = torch.arange(len(labels))
    shift = (before[rows, 1 - labels] - after[rows, 1 - labels]).mean().item()
    return {"mse": nn.functional.mse_loss(after, targets).item(),
            "mse_untrained": nn.functional.mse_loss(before, targets).item(),
            "other_logit_shift": shift,
            "own_logit_change": (before[rows, labels] - after[rows, labels]).abs().mean().item(),
            "shift_fraction": shift / alpha if alpha else float("nan")}
