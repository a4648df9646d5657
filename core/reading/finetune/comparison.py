"""Several models side by side on the same held-out nodules, and whether a new one is not worse."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np

from core.training.data import NoduleDataset

MAE_TOLERANCE = 0.05  # rating units: a new model this much worse on attributes is "worse"


def compare(
    models: Mapping[str, object],
    val: NoduleDataset,
    device: str = "cpu",
    thresholds: Mapping[str, float] | None = None,
    probabilities: dict | None = None,
) -> dict[str, dict]:
    """Each model's metrics on the same held-out nodules (``core.training.trainer.nodule_metrics``)
    and ECE (15 bins); ``probabilities``, when given, receives each model's probabilities of the
    labelled nodules (for ``effect``)."""
    from core.training.metrics import expected_calibration_error
    from core.training.trainer import aggregate, nodule_metrics, slice_outputs

    thresholds = thresholds or {}
    out = {}
    for name, model in models.items():
        model.to(device)
        with warnings.catch_warnings():  # all-NaN attributes or one class: NaN, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            if len(val.patches):
                probs, attrs = slice_outputs(model, val, device)
            else:
                probs, attrs = np.zeros(0), np.zeros((0, val.attributes.shape[1]))
            out[name] = nodule_metrics(val, probs, attrs, float(thresholds.get(name, 0.5)))
            labelled = val.labels >= 0
            nodule_probs = aggregate(val, probs, attrs)[0][labelled] if len(val.patches) else np.zeros(0)
            out[name]["ece"] = expected_calibration_error(val.labels[labelled], nodule_probs)
            if probabilities is not None:
                probabilities[name] = nodule_probs
        out[name]["nonfinite_outputs"] = int((~np.isfinite(probs)).sum() + (~np.isfinite(attrs)).sum())
    return out


def not_worse(comparison: Mapping[str, dict], new: str = "new", old: str = "active") -> tuple[bool, str]:
    """Whether ``new`` is at least as good as ``old`` on the held-out data, and why not.

    Worse means: outputs that are not numbers, no AUC where the old model has one, a lower AUC (or,
    where neither has an AUC, a lower accuracy), or an attribute MAE more than ``MAE_TOLERANCE``
    higher. Other figures that are NaN for either model are not compared.
    """
    a, b = comparison[new], comparison[old]
    reasons = []
    if a.get("nonfinite_outputs"):
        reasons.append(f"{a['nonfinite_outputs']} outputs are not numbers")
    if _finite(b["auc"]) and not _finite(a["auc"]):
        reasons.append("its AUC cannot be computed")
    elif _finite(a["auc"], b["auc"]):
        if a["auc"] < b["auc"] - 1e-9:
            reasons.append(f"AUC {a['auc']:.3f} < {b['auc']:.3f}")
    elif _finite(a["accuracy"], b["accuracy"]) and a["accuracy"] < b["accuracy"] - 1e-9:
        reasons.append(f"accuracy {a['accuracy']:.3f} < {b['accuracy']:.3f}")
    mae_a, mae_b = a["attributes"]["mean_mae"], b["attributes"]["mean_mae"]
    if _finite(mae_a, mae_b) and mae_a > mae_b + MAE_TOLERANCE:
        reasons.append(f"attribute MAE {mae_a:.3f} > {mae_b:.3f}")
    return not reasons, "; ".join(reasons)


def effect(labels: np.ndarray, new: np.ndarray, old: np.ndarray, samples: int = 2000, seed: int = 0) -> dict:
    """The change from ``old`` to ``new`` probabilities on the same nodules: AUC and ECE differences
    (new - old) with paired percentile bootstrap 95 % intervals over nodules
    (``core.training.metrics.bootstrap_interval``). NaN where a figure cannot be had (one class)."""
    from core.training.metrics import bootstrap_interval, expected_calibration_error, roc_auc

    labels = np.asarray(labels).astype(int)
    figures = {
        "auc": lambda y, a, b: roc_auc(y, a) - roc_auc(y, b),
        "ece": lambda y, a, b: expected_calibration_error(y, a) - expected_calibration_error(y, b),
    }
    out = {"n": len(labels), "n_malignant": int(labels.sum()), "level": 0.95, "samples": samples}
    for name, difference in figures.items():
        value = difference(labels, new, old) if len(labels) else float("nan")
        low, high = (
            bootstrap_interval(difference, (labels, new, old), samples, 0.95, seed)
            if math.isfinite(value)
            else (float("nan"), float("nan"))
        )
        out[name] = {"difference": value, "low": low, "high": high}
    return out


def describe_effect(figures: Mapping) -> str:
    """One sentence for the reader, e.g. "AUC +0.021 (95 % interval -0.030 to +0.070)..."."""
    n, malignant = figures["n"], figures["n_malignant"]
    head = f"Effect on your {n} held-out nodules ({malignant} malignant), new minus active: "
    auc, ece = figures["auc"], figures["ece"]
    if not _finite(auc["difference"]):
        return head + "the AUC cannot be measured (the held-out nodules are all of one class)."
    text = f"AUC {auc['difference']:+.3f} (95 % interval {auc['low']:+.3f} to {auc['high']:+.3f})"
    if _finite(ece["difference"]):
        text += f", ECE {ece['difference']:+.3f} ({ece['low']:+.3f} to {ece['high']:+.3f})"
    if auc["low"] <= 0 <= auc["high"]:
        text += "; the interval includes no change"
    return head + text + " (bootstrap over nodules)."


def format_comparison(comparison: Mapping[str, dict]) -> str:
    """A plain-text table, one column per model."""
    names = list(comparison)
    rows = [
        ("AUC", lambda m: m["auc"]),
        ("accuracy", lambda m: m["accuracy"]),
        ("sensitivity", lambda m: m["sensitivity"]),
        ("specificity", lambda m: m["specificity"]),
        ("threshold", lambda m: m["threshold"]),
        ("attribute MAE", lambda m: m["attributes"]["mean_mae"]),
        ("ECE (15 bins)", lambda m: m.get("ece")),
        ("nodules (malignant)", None),
    ]
    width = max(14, *(len(n) + 2 for n in names))
    lines = ["".ljust(20) + "".join(n.rjust(width) for n in names)]
    for title, get in rows:
        if get is None:
            cells = [f"{m['n']} ({m['n_malignant']})" for m in comparison.values()]
        else:
            cells = ["-" if not _finite(get(m)) else f"{get(m):.3f}" for m in comparison.values()]
        lines.append(title.ljust(20) + "".join(c.rjust(width) for c in cells))
    return "\n".join(lines)


def _finite(*values) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def reserved_split_concerns(new_card: Mapping, active_card: Mapping) -> list[str]:
    """Why activating ``new_card``'s model needs the reader's insistence: its reserved-split AUC or
    ECE (``metrics.test``, written by ``evaluate --split test --record``) worse than the active
    model's, or not measured where the active one's is. Empty: nothing against it."""
    new = (new_card.get("metrics") or {}).get("test") or {}
    active = (active_card.get("metrics") or {}).get("test") or {}
    concerns = []
    for figure, key, higher_is_better in (("AUC", "auc", True), ("ECE", "ece", False)):
        mine, theirs = new.get(key), active.get(key)
        if not _finite(theirs):
            continue
        if not _finite(mine):
            concerns.append(f"reserved-split {figure}: not measured for the new model, {theirs:.3f} active")
        elif (mine < theirs - 1e-9) if higher_is_better else (mine > theirs + 1e-9):
            line = f"reserved-split {figure}: {mine:.3f} new, {theirs:.3f} active"
            chance = new.get("ece_if_calibrated") if key == "ece" else None
            if _finite(chance):  # evaluate records it: an ECE difference below it may be chance
                line += f" (a perfectly calibrated model would give about {chance:.3f} on these nodules)"
            concerns.append(line)
    return concerns
