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
) -> dict[str, dict]:
    """Each model's metrics on the same held-out nodules (``core.training.trainer.nodule_metrics``)."""
    from core.training.trainer import nodule_metrics, slice_outputs

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
