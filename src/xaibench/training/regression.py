"""GAD support regression models (Mazini Rodrigues, Boutry & Najman 2024).

Initialised from the original classifier's weights, trained with MSE (softmax replaced
by the identity: the network's raw outputs regress the targets) towards the original
logits with the other class's logit lowered by α (:func:`support_regression_targets`).
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
                        lr: float, batch_size: int, seed: int, on_epoch=None) -> nn.Module:
    """A copy of ``original`` fine-tuned (Adam, MSE) on the α-shifted logits; returns it in eval mode."""
    torch.manual_seed(seed)
    targets = support_regression_targets(logits_of(original, pixels), labels, alpha)
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
