"""K-fold CV+ prediction intervals (Barber, Candès, Ramdas and Tibshirani, 2021,
"Predictive inference with the jackknife+", Ann. Statist. 49(1), section 3.2).

With the n training points split into K folds and mu_{-k} the model trained
without fold k, each training point i gets the out-of-fold residual
R_i = |y_i - mu_{-k(i)}(x_i)|, and a test point x gets

    lower = the floor(alpha (n+1))-th smallest of   mu_{-k(i)}(x) - R_i,  i = 1..n
    upper = the ceil((1-alpha)(n+1))-th smallest of mu_{-k(i)}(x) + R_i,  i = 1..n

(-inf / +inf when that rank is below 1 / above n). For exchangeable data the
paper guarantees coverage of at least 1 - 2 alpha, less a term that vanishes
as the folds grow, whatever the model; in practice it is close to 1 - alpha.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

import torch


def ranks(n: int, alpha: float) -> tuple[int, int]:
    """(floor(alpha (n+1)), ceil((1-alpha)(n+1))), computed exactly.

    In floating point (1 - 0.1) * 200 is 180.00000000000003, whose ceiling is
    181, not 180; the decimal the user wrote is taken as an exact fraction.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be strictly between 0 and 1")
    a = Fraction(str(alpha))
    return math.floor(a * (n + 1)), math.ceil((1 - a) * (n + 1))


def folds(n: int, k: int, seed: int) -> list[list[int]]:
    """A random partition of range(n) into k folds whose sizes differ by at most one."""
    if not 2 <= k <= n:
        raise ValueError(f"k_folds={k} must be between 2 and the number of training points ({n})")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [sorted(order[j::k]) for j in range(k)]


def cv_plus_intervals(
    test_predictions: torch.Tensor, residuals: torch.Tensor, fold_of: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Intervals for m test points.

    test_predictions: (K, m), row k = mu_{-k} at each test point.
    residuals: (n,), R_i for each training point; fold_of: (n,) its fold k(i).
    """
    n = residuals.shape[0]
    low_rank, high_rank = ranks(n, alpha)
    mu = test_predictions[fold_of]  # (n, m): mu_{-k(i)}(x_j)
    r = residuals.unsqueeze(1)
    m = test_predictions.shape[1]
    if low_rank >= 1:
        lower = torch.kthvalue(mu - r, low_rank, dim=0).values
    else:
        lower = torch.full((m,), -math.inf, dtype=mu.dtype)
    if high_rank <= n:
        upper = torch.kthvalue(mu + r, high_rank, dim=0).values
    else:
        upper = torch.full((m,), math.inf, dtype=mu.dtype)
    return lower, upper
