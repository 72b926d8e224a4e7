"""BG/NBD: how often a customer buys and whether they are still buying.

Fader, Hardie & Lee (2005), "Counting your customers the easy way". While active, a
customer buys as a Poisson process with rate λ ~ Gamma(r, α); after each repeat purchase
they drop out for good with probability p ~ Beta(a, b). Per customer the data are
x (repeat purchases: orders − 1), t_x (first to last order) and T (first order to now).

Time unit: days everywhere (α, t_x, T and horizons).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

Array = NDArray[np.float64]

# Log-parameter bounds: wide enough for any shop, narrow enough to keep the maths finite.
_LOG_BOUNDS = ((-9.0, 9.0), (-9.0, 12.0), (-9.0, 9.0), (-9.0, 9.0))
_HUGE = 1e12  # the objective at a point where the likelihood is not finite


class NotConverged(Exception):
    """The optimiser stopped without a usable maximum (too little or odd data)."""


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float


def _arrays(*values: ArrayLike) -> list[Array]:
    return [np.asarray(v, dtype=np.float64) for v in values]


def log_likelihood(params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Array:
    """Per-customer log-likelihood (FHL 2005, eq. 6), in the log-sum-exp form that stays
    finite for customers with many orders."""
    x_, t_x_, T_ = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    common = gammaln(r + x_) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x_) - betaln(a, b)
    still_active = -(r + x_) * np.log(alpha + T_)
    repeat = x_ > 0
    dropped = np.where(
        repeat,
        np.log(a) - np.log(np.where(repeat, b + x_ - 1, 1.0)) - (r + x_) * np.log(alpha + t_x_),
        -np.inf,
    )
    result: Array = common + np.logaddexp(still_active, dropped)
    return result


def fit(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None
) -> BgNbdParams:
    """Maximum likelihood on log-parameters (L-BFGS-B); `weights` counts identical rows."""
    x_, t_x_, T_ = _arrays(x, t_x, T)
    w = np.ones_like(x_) if weights is None else np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    if total <= 0:
        raise NotConverged("no customers")

    def objective(theta: Array) -> float:
        r, alpha, a, b = np.exp(theta)
        with np.errstate(all="ignore"):  # far-off trial points may overflow; see below
            ll = log_likelihood(BgNbdParams(r, alpha, a, b), x_, t_x_, T_)
            value = float(-(w * ll).sum() / total)
        return value if np.isfinite(value) else _HUGE

    # Start from a rate that matches the average purchase frequency and a moderate dropout.
    rate = max(float((w * x_).sum() / max((w * T_).sum(), 1e-9)), 1e-4)
    start = np.log([1.0, 1.0 / rate, 1.0, 3.0])
    start = np.clip(start, [lo for lo, _ in _LOG_BOUNDS], [hi for _, hi in _LOG_BOUNDS])
    result = minimize(objective, start, method="L-BFGS-B", bounds=_LOG_BOUNDS)
    if not result.success or not np.all(np.isfinite(result.x)):
        raise NotConverged(str(result.message))
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    return BgNbdParams(r=r, alpha=alpha, a=a, b=b)


def _dropout_odds(params: BgNbdParams, x: Array, t_x: Array, T: Array) -> Array:
    """Odds of "dropped out after the last order" against "still active"; 0 with no repeat."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    log_odds = (
        np.log(a)
        - np.log(np.where(repeat, b + x - 1, 1.0))
        + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    )
    odds: Array = np.where(repeat, np.exp(np.minimum(log_odds, 700.0)), 0.0)
    return odds


def p_alive(params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Array:
    """P(still active | x, t_x, T). Always 1 with no repeat purchase: in BG/NBD a
    customer can only drop out right after a repeat purchase."""
    x_, t_x_, T_ = _arrays(x, t_x, T)
    result: Array = 1.0 / (1.0 + _dropout_odds(params, x_, t_x_, T_))
    return result


def expected_purchases(
    params: BgNbdParams, t: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> Array:
    """E[purchases in (T, T + t] | x, t_x, T] (FHL 2005, eq. 10).

    The factor ((α+T)/(α+T+t))^(r+x) · 2F1(r+x, b+x; a+b+x−1; z) is rewritten with Euler's
    transformation as (1−z)^(a−1) · 2F1(a+b−1−r, a−1; a+b+x−1; z), which does not overflow
    for customers with many orders.
    """
    x_, t_x_, T_ = _arrays(x, t_x, T)
    r, alpha, b = params.r, params.alpha, params.b
    a = params.a if abs(params.a - 1.0) > 1e-7 else 1.0 + 1e-7  # removable singularity
    z = t / (alpha + T_ + t)
    tail = np.power(1.0 - z, a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x_ - 1.0, z)
    numerator = (a + b + x_ - 1.0) / (a - 1.0) * (1.0 - tail)
    expected = numerator / (1.0 + _dropout_odds(params, x_, t_x_, T_))
    # Upper bound: no further dropout at all (Poisson with the posterior mean rate).
    bound = p_alive(params, x_, t_x_, T_) * t * (r + x_) / (alpha + T_)
    result: Array = np.clip(np.where(np.isfinite(expected), expected, bound), 0.0, bound)
    return result


def median_days_to_next_purchase(params: BgNbdParams, x: ArrayLike, T: ArrayLike) -> Array:
    """Median wait from now to the next purchase, *if still active*.

    Given active, λ | data ~ Gamma(r + x, α + T) and the wait W is Lomax:
    P(W > w) = ((α + T) / (α + T + w))^(r + x), so the median is
    (α + T) · (2^(1/(r+x)) − 1). Measured from now, so never in the past.
    """
    x_, T_ = _arrays(x, T)
    result: Array = (params.alpha + T_) * np.expm1(np.log(2.0) / (params.r + x_))
    return result
