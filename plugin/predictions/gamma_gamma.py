"""Gamma-Gamma: how much a customer spends per order.

Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves for customer base
analysis". Order values of a customer are Gamma(p, ν) with ν ~ Gamma(q, γ) across
customers, so a customer's average of n orders, m, is shrunk towards the shop's mean, the
more the fewer orders it rests on. It assumes spend does not depend on how often one buys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import gammaln

from plugin.predictions.bgnbd import NotConverged

Array = NDArray[np.float64]

_LOG_BOUNDS = ((-9.0, 9.0), (-9.0, 9.0), (-9.0, 20.0))  # p, q − 1, γ


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float  # > 1, or the shop's mean order value would be infinite
    gamma: float

    @property
    def mean_order_value(self) -> float:
        """The population mean, for a customer with no paid order yet."""
        return self.p * self.gamma / (self.q - 1.0)


def log_likelihood(params: GammaGammaParams, n: ArrayLike, m: ArrayLike) -> Array:
    """Per-customer log density of the average m of n order values."""
    n_ = np.asarray(n, dtype=np.float64)
    m_ = np.asarray(m, dtype=np.float64)
    p, q, g = params.p, params.q, params.gamma
    result: Array = (
        gammaln(p * n_ + q)
        - gammaln(p * n_)
        - gammaln(q)
        + q * np.log(g)
        + (p * n_ - 1.0) * np.log(m_)
        + p * n_ * np.log(n_)
        - (p * n_ + q) * np.log(g + n_ * m_)
    )
    return result


def fit(n: ArrayLike, m: ArrayLike) -> GammaGammaParams:
    """Maximum likelihood over customers with n ≥ 1 orders of positive average m."""
    n_ = np.asarray(n, dtype=np.float64)
    m_ = np.asarray(m, dtype=np.float64)
    keep = (n_ >= 1) & (m_ > 0)
    n_, m_ = n_[keep], m_[keep]
    if n_.size == 0:
        raise NotConverged("no paid orders")

    def objective(theta: Array) -> float:
        p, q_minus_one, g = np.exp(theta)
        with np.errstate(all="ignore"):
            value = float(-log_likelihood(GammaGammaParams(p, 1.0 + q_minus_one, g), n_, m_).mean())
        return value if np.isfinite(value) else 1e12

    # p = q − 1 = 1 and γ = mean: a prior mean equal to the observed mean.
    start = np.log([1.0, 1.0, float(m_.mean())])
    result = minimize(objective, start, method="L-BFGS-B", bounds=_LOG_BOUNDS)
    if not result.success or not np.all(np.isfinite(result.x)):
        raise NotConverged(str(result.message))
    p, q_minus_one, g = (float(v) for v in np.exp(result.x))
    return GammaGammaParams(p=p, q=1.0 + q_minus_one, gamma=g)


def expected_order_value(params: GammaGammaParams, n: ArrayLike, m: ArrayLike) -> Array:
    """E[order value | n, m] = (p (γ + n m)) / (p n + q − 1): the population mean for
    n = 0, tending to the customer's own average as n grows."""
    n_ = np.asarray(n, dtype=np.float64)
    m_ = np.where(n_ > 0, np.asarray(m, dtype=np.float64), 0.0)
    p, q, g = params.p, params.q, params.gamma
    result: Array = p * (g + n_ * m_) / (p * n_ + q - 1.0)
    return result
