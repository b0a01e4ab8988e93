"""Concept-level faithfulness of a self-explaining network (Alvarez-Melis & Jaakkola
2018, section 4 "faithfulness"): remove one concept at a time (set h_j = 0), record the
drop of the predicted class's probability, and correlate the drops with the concepts'
relevances θ_cj. A faithful explanation gives high (positive) correlation."""

from __future__ import annotations

import numpy as np
import torch

from xaibench.metrics.faithfulness import rowwise_pearson


@torch.no_grad()
def concept_ablation_drops(senn, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """For normalised inputs x: (drops [N, k], relevances θ_c [N, k]) with c the predicted
    class and ``drops[n, j] = p_c(x_n) − p_c(x_n | h_j := 0)``."""
    out = senn.explain(x)
    probs = out.logits.softmax(-1)
    predicted = probs.argmax(-1)
    rows = torch.arange(len(x))
    k = out.concepts.shape[1]
    drops = torch.empty(len(x), k)
    for j in range(k):
        ablated = out.concepts.clone()
        ablated[:, j] = 0.0
        logits = (out.relevances * ablated.unsqueeze(1)).sum(-1)
        drops[:, j] = probs[rows, predicted] - logits.softmax(-1)[rows, predicted]
    return drops.numpy().astype(np.float64), out.relevances[rows, predicted].numpy().astype(np.float64)


def ablation_correlation(relevances: np.ndarray, drops: np.ndarray) -> np.ndarray:
    """Pearson correlation, per image, between θ_c [N, k] and the ablation drops [N, k]
    (NaN where either is constant)."""
    return rowwise_pearson(relevances, drops)
