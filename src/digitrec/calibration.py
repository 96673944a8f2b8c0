"""Calibration: do a model's confidences match how often it is right?

Temperature scaling (Guo et al., 2017) divides the logits by one number T fitted to minimise
the negative log-likelihood on held-out images; it leaves every prediction unchanged and only
makes the probabilities honest. Expected calibration error (ECE) measures what is left: the
gap between confidence and accuracy, averaged over confidence bins. numpy only, so light
installs (ONNX Runtime, no torch) apply the temperature too.
"""

from __future__ import annotations

import math

import numpy as np

ECE_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature, computed stably."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    exp = np.exp(z - z.max(1, keepdims=True))
    return (exp / exp.sum(1, keepdims=True)).astype(np.float32)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray,
                            temperature: float = 1.0) -> float:
    """Mean cross-entropy of softmax(logits / temperature) against the labels."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    top = z.max(1, keepdims=True)
    log_norm = np.log(np.exp(z - top).sum(1)) + top[:, 0]
    return float(np.mean(log_norm - z[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray,
                    tolerance: float = 1e-4) -> float | None:
    """The temperature that minimises the NLL of held-out logits, or None when the images do
    not determine one (none held out, or no mistakes among them: the NLL then keeps falling as
    T shrinks, and a temperature at the end of TEMPERATURE_RANGE would make every answer
    look certain).

    The NLL is convex in 1/T, so a golden-section search over log T in TEMPERATURE_RANGE
    finds the minimum without gradients.
    """
    if len(labels) == 0 or (np.asarray(logits).argmax(1) == labels).all():
        return None
    def nll(log_t: float) -> float:
        return negative_log_likelihood(logits, labels, math.exp(log_t))

    lo, hi = (math.log(t) for t in TEMPERATURE_RANGE)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    while hi - lo > tolerance:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    temperature = math.exp((lo + hi) / 2)
    low, high = TEMPERATURE_RANGE
    return None if not 1.01 * low < temperature < high / 1.01 else temperature


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Expected calibration error and its table: per equal-width confidence bin, the number of
    images, their mean confidence and their accuracy (empty bins have None)."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    right = np.bincount(which, weights=correct, minlength=bins)
    ece = float(np.abs(right - conf_sum).sum() / max(len(labels), 1))
    table = [{"lower": i / bins, "upper": (i + 1) / bins, "count": int(n),
              "confidence": float(c / n) if n else None, "accuracy": float(r / n) if n else None}
             for i, (n, c, r) in enumerate(zip(count, conf_sum, right, strict=True))]
    return {"ece": ece, "bins": table}
