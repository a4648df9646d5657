"""Temperature calibration of the malignancy probability: fit, apply, read from a model card.

One scalar T divides the nodule's malignancy logit, and an optional bias b shifts it:
p' = sigmoid(logit(p) / T + b), p the nodule-level probability the Predictor and ``evaluate`` compute
(the mean over slices and mirror images). T (and b) are fitted by minimising the negative
log-likelihood on the validation split's nodules only, and stored in the model card
(``"calibration"``); a card without it means T = 1, b = 0 (the model as trained).

Why a bias: a sharp reconstruction kernel and a low dose move every logit up, more with more noise,
a shift that no temperature undoes. Fitted on validation nodules rendered under a
spread of scan protocols (``calibrate --protocols``), T and b undo the shift on average across them,
not per protocol: it differs by up to 1.5 logits between the robustness matrix's cells (README).

Why a temperature rather than isotonic regression: the validation split holds about 300 labelled
nodules (about 90 malignant). One parameter cannot overfit them, and being monotone it leaves the
ranking and the AUC exactly as they were. Isotonic regression on 300 points is a step function with
a handful of wide steps: it overfits the validation nodules, and its flat steps tie nodules that the
model ranks apart, which changes the ranking the product exists to give.

ECE and the reliability diagram are in ``core.training.reliability`` (they use the training
metrics, a layer above this one); ``python main.py calibrate`` fits and records T (and b).
"""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-6
T_RANGE = (0.05, 20.0)  # a temperature outside it means the validation data say nothing sensible
BIAS_LIMIT = 10.0  # logits; a larger shift means the same


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def apply_temperature(p, temperature: float, bias: float = 0.0) -> np.ndarray:
    """``p`` (probabilities) with their logits divided by ``temperature`` and shifted by ``bias``
    (1 and 0: unchanged)."""
    if temperature == 1.0 and bias == 0.0:
        return np.asarray(p, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-(logit(p) / temperature + bias)))


def card_temperature(card: dict) -> float:
    """The temperature a model card carries, 1 when it has none (an uncalibrated model)."""
    return _card_value(card, "temperature", 1.0, lambda t: t > 0)


def card_bias(card: dict) -> float:
    """The logit bias a model card carries, 0 when it has none (temperature only, or uncalibrated)."""
    return _card_value(card, "bias", 0.0, lambda b: abs(b) <= BIAS_LIMIT)


def _card_value(card: dict, key: str, default: float, sane) -> float:
    """``card["calibration"][key]`` as a finite number that is ``sane``, else ``default`` (a hand-edited
    or damaged card scores as uncalibrated rather than with a nonsense calibration)."""
    calibration = card.get("calibration") or {}
    try:
        value = float(calibration.get(key, default))
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) and sane(value) else default


def card_calibration(card: dict) -> tuple[float, float]:
    """(temperature, bias) of a model card: what ``apply_temperature`` takes."""
    return card_temperature(card), card_bias(card)


def fit_temperature(labels, probabilities) -> float:
    """T minimising the NLL of ``labels`` (0/1) under sigmoid(logit(p) / T).

    The NLL is convex in b = 1 / T (a logistic regression with one slope and no intercept), so
    Newton's method on b converges in a few steps. Raises ValueError without both classes."""
    y = np.asarray(labels, dtype=np.float64)
    z = logit(probabilities)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("calibration needs labelled nodules of both classes")
    b = 1.0
    for _ in range(100):
        q = 1.0 / (1.0 + np.exp(-b * z))
        gradient = float(np.sum((q - y) * z))
        hessian = float(np.sum(q * (1 - q) * z * z)) + 1e-12
        step = gradient / hessian
        b = min(max(b - step, 1 / T_RANGE[1]), 1 / T_RANGE[0])
        if abs(step) < 1e-10:
            break
    return float(1.0 / b)


def fit_temperature_bias(labels, probabilities) -> tuple[float, float]:
    """(T, b) minimising the NLL of ``labels`` under sigmoid(logit(p) / T + b): a logistic regression
    on the logit with a slope 1 / T and an intercept b (Platt scaling), convex, by Newton's method.
    Raises ValueError without both classes."""
    y = np.asarray(labels, dtype=np.float64)
    z = logit(probabilities)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("calibration needs labelled nodules of both classes")
    x = np.column_stack([z, np.ones_like(z)])
    w = np.array([1.0, 0.0])
    for _ in range(100):
        q = 1.0 / (1.0 + np.exp(-(x @ w)))
        hessian = (x * (q * (1 - q))[:, None]).T @ x + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, x.T @ (q - y))
        w = w - step
        w[0] = min(max(w[0], 1 / T_RANGE[1]), 1 / T_RANGE[0])
        w[1] = min(max(w[1], -BIAS_LIMIT), BIAS_LIMIT)
        if np.abs(step).max() < 1e-10:
            break
    return float(1.0 / w[0]), float(w[1])


def nll(labels, probabilities) -> float:
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
