"""Noisy linear imputation: ROAD's way of removing pixels without leaking their shape.

Rong, Leemann, Borisov, Kasneci & Kasneci 2022, "A consistent and efficient evaluation
strategy for attribution methods" (ICML), sec. 4 ("Noisy linear imputation"): every removed
pixel takes the weighted mean of its 8 neighbours, weight 1/6 for the 4 direct and 1/12 for
the 4 diagonal ones (only those inside the image), where the neighbours are themselves known
or imputed. So the removed values solve one sparse linear system per channel,

    Σ_{j ∈ N(i)} w_ij · x_i − Σ_{j ∈ N(i), removed} w_ij · x_j = Σ_{j ∈ N(i), known} w_ij · v_j

(``v`` the image), then Gaussian noise of standard deviation ``noise`` is added to each
imputed value. The authors' code (also in pytorch-grad-cam, ``metrics/road.py``) builds the
system in a Python loop over a ``lil_matrix``; :func:`noisy_linear_imputation` builds the
same matrix with array operations and factorises it once for all channels (SuperLU),
``tests/explain/test_imputation.py`` checks it against pytorch-grad-cam's imputer.

The noise is in the units of the tensor it is given: xaibench imputes pixels in [0, 1]
(the models normalise inside), where the authors' 0.01 was on the normalised input; the
difference is a row of ``docs/fidelity.yaml``.
"""

from __future__ import annotations

from concurrent.futures import Executor

import numpy as np
import scipy.sparse as sparse
import torch
from scipy.sparse.linalg import splu

# (dy, dx) -> weight: Rong et al.'s 8-neighbourhood
NEIGHBOUR_WEIGHTS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12), ((0, -1), 1 / 6),
                     ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))


def imputation_system(values: np.ndarray, removed: np.ndarray) -> tuple[sparse.csc_matrix, np.ndarray, np.ndarray]:
    """The linear system of the removed pixels: (A [M, M], b [M, C], their flat indices [M]).

    ``values`` [C, H, W] the image; ``removed`` [H, W] bool. Row i of ``A x = b`` says
    that removed pixel i is the weighted mean of its neighbours inside the image."""
    c, h, w = values.shape
    flat = values.reshape(c, -1).astype(np.float64)
    known = ~removed.ravel()
    unknown = np.flatnonzero(~known)
    m = len(unknown)
    variable = np.full(h * w, -1)
    variable[unknown] = np.arange(m)
    y, x = np.divmod(unknown, w)
    diagonal, rhs = np.zeros(m), np.zeros((m, c))
    rows, cols, weights = [np.arange(m)], [np.arange(m)], []
    for (dy, dx), weight in NEIGHBOUR_WEIGHTS:
        yy, xx = y + dy, x + dx
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        row, neighbour = np.flatnonzero(inside), yy[inside] * w + xx[inside]
        diagonal[row] += weight
        given = known[neighbour]
        rhs[row[given]] += weight * flat[:, neighbour[given]].T
        rows.append(row[~given])
        cols.append(variable[neighbour[~given]])
        weights.append(np.full(int((~given).sum()), -weight))
    matrix = sparse.csc_matrix((np.concatenate([diagonal, *weights]), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(m, m))
    return matrix, rhs, unknown


def linear_imputation_solution(values: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The removed pixels' values [M, C] that solve :func:`imputation_system` (no noise), in
    the order of its flat indices. SuperLU releases the GIL, so solves run side by side in threads."""
    matrix, rhs, _ = imputation_system(values, removed)
    # A is symmetric (w_ij = w_ji) and diagonally dominant: SuperLU's symmetric mode (minimum
    # degree on A + Aᵀ, diagonal pivots) factorises it 1.7x faster at 90 % removed, same solution
    return splu(matrix, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                options={"SymmetricMode": True}).solve(rhs)                # [M, C]


def _checked(removed) -> np.ndarray:
    removed = np.asarray(removed, bool)
    if removed.all():
        raise ValueError("noisy linear imputation needs at least one kept pixel (every pixel was removed)")
    return removed


def _with_noise(image: torch.Tensor, removed: np.ndarray, solution: np.ndarray | None, noise: float,
                rng: np.random.Generator | None) -> torch.Tensor:
    """``image`` with ``solution`` (None: nothing removed) written into its removed pixels,
    plus the noise drawn from ``rng`` now."""
    out = image.detach().contiguous().clone()
    if solution is None:
        return out
    if noise:
        solution = solution + (rng if rng is not None else np.random.default_rng()).normal(0.0, noise, solution.shape)
    unknown = np.flatnonzero(removed.ravel())
    flat = out.view(out.shape[0], -1)
    flat[:, torch.from_numpy(unknown).to(out.device)] = torch.from_numpy(solution.T).to(out.dtype).to(out.device)
    return out


def noisy_linear_imputation(image: torch.Tensor, removed: np.ndarray, noise: float = 0.01,
                            rng: np.random.Generator | None = None) -> torch.Tensor:
    """``image`` [C, H, W] with the ``removed`` [H, W] pixels linearly imputed from their
    neighbours, plus N(0, noise²) per imputed value (drawn from ``rng``; none when ``noise``
    is 0): a new [C, H, W] tensor of the image's dtype and device. Nothing removed: a copy.
    Everything removed: the system has no known value to anchor it, so it is refused."""
    return noisy_linear_imputations(image, [removed], noise, rng)[0]


def noisy_linear_imputations(image: torch.Tensor, removals, noise: float = 0.01, rng: np.random.Generator | None = None,
                             pool: Executor | None = None) -> list[torch.Tensor]:
    """:func:`noisy_linear_imputation` of ``image`` for each mask of ``removals``, the very
    tensors that calling it once per mask in order with the one ``rng`` gives: the solves run
    on ``pool`` (a thread pool; None: one after the other), the noise is drawn afterwards in
    the masks' order. ROAD's solves (single-threaded scipy, ~10 per image and method, most of
    a saliency study's evaluate) otherwise leave the second core of a 2-core machine idle:
    1.5x faster on two threads here."""
    removals = [_checked(removed) for removed in removals]
    values = image.detach().cpu().numpy()

    def solve(removed):
        return linear_imputation_solution(values, removed) if removed.any() else None

    solutions = list(pool.map(solve, removals) if pool is not None else map(solve, removals))
    return [_with_noise(image, removed, solution, noise, rng) for removed, solution in zip(removals, solutions)]
