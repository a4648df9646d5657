"""The protocol matrix: a model's malignancy ranking under every scan protocol of ``MATRIX``, against
the diameter alone and the rating oracle on the very same nodules, and what it adds beyond size.

Every cell renders the reserved split with one protocol of ``core.phantom.protocol.MATRIX`` and seeds
the model never saw. Per cell: the model's AUC, the diameter-only AUC, their difference with a paired
bootstrap interval, the rating oracle's AUC (both baselines are fitted on the train split and do not
depend on the rendering), the ECE (15 bins) of the probabilities as the model reports them (after the
card's calibration), AUC within diameter strata and the floors' verdicts, and what the miscalibration
is (``miscalibration``: mean predicted vs observed, and the temperature or temperature + bias that
would suit that cell alone: a diagnosis on the reserved split, never stored in a card). Beyond size:
a logistic regression of malignancy on the diameter and the model's logit, fitted on the validation
split rendered nominally, whose score coefficient comes with a bootstrap interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from core.lidc.records import LidcNodule
from core.phantom.protocol import MATRIX, NOMINAL
from core.training.baselines import LogisticRegression, features, labels_of
from core.training.data import DatasetSpec, NoduleDataset, build_dataset, cached_dataset
from core.training.metrics import bootstrap_interval, ece_if_calibrated, expected_calibration_error, roc_auc

STRATA_MM = ((0.0, 6.0), (6.0, 10.0), (10.0, 20.0), (20.0, float("inf")))
FLOORS = {"beats_diameter": 0.01, "oracle_gap": 0.015, "nominal_loss": 0.01, "ece": 0.08}
NOMINAL_CELL = next(name for name, p in MATRIX.items() if p == NOMINAL)


def _auc(y, s) -> float | None:
    value = roc_auc(np.asarray(y), np.asarray(s)) if len(set(np.asarray(y).tolist())) == 2 else float("nan")
    return None if not np.isfinite(value) else round(float(value), 4)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def probabilities_as_reported(card: dict) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """How the model's probabilities are shown: after the card's calibration (temperature, bias) when
    it holds one, else raw. Returns the mapping and a note saying which."""
    from core.model.calibration import apply_temperature, card_calibration

    t, b = card_calibration(card)
    if (t, b) == (1.0, 0.0):
        return (lambda p: p), "raw probabilities (the card has no calibration)"
    note = f"after the card's temperature {t:.3f}" + (f" and bias {b:+.3f}" if b else "")
    return (lambda p: apply_temperature(p, t, b)), note


def nodule_scores(model, data: NoduleDataset, device: str) -> np.ndarray:
    """The model's malignancy probability per nodule, as evaluate computes it."""
    from core.training.trainer import aggregate, slice_outputs

    slice_probs, slice_attrs = slice_outputs(model, data, device)
    return aggregate(data, slice_probs, slice_attrs)[0]


def render(
    spec: DatasetSpec, nodules: Sequence[LidcNodule], full: bool, chest_store: dict, progress=None
) -> NoduleDataset:
    """``spec``'s rendering of ``nodules``: cached when they are the whole split, else made afresh."""
    if full:
        return cached_dataset(spec, nodules, progress, chest_store=chest_store)
    return build_dataset(spec, nodules, progress, chest_store=chest_store)


def strata_aucs(y, score, diameter) -> list[dict]:
    out = []
    for lo, hi in STRATA_MM:
        rows = (diameter >= lo) & (diameter < hi)
        out.append(
            {
                "diameter_mm": [lo, None if hi == float("inf") else hi],
                "n": int(rows.sum()),
                "malignant": int(y[rows].sum()),
                "auc": _auc(y[rows], score[rows]),
                "diameter_auc": _auc(y[rows], diameter[rows]),
            }
        )
    return out


def cell_figures(y, score, diameter, oracle, samples: int, seed: int) -> dict:
    """One cell's figures on labelled nodules (``score``: probabilities as reported)."""
    auc, d_auc = _auc(y, score), _auc(y, diameter)

    def gain(yy, ss, dd) -> float:
        a, b = _auc(yy, ss), _auc(yy, dd)
        return float("nan") if a is None or b is None else a - b

    lo, hi = bootstrap_interval(gain, (y, score, diameter), samples=samples, seed=seed)
    reference = ece_if_calibrated(y, score, bins=15, draws=samples, seed=seed)
    return {
        "n": len(y),
        "malignant": int(y.sum()),
        "auc": auc,
        "diameter_auc": d_auc,
        "auc_minus_diameter": None if auc is None or d_auc is None else round(auc - d_auc, 4),
        "auc_minus_diameter_95ci": [round(lo, 4), round(hi, 4)] if np.isfinite(lo) else None,
        "oracle_auc": _auc(y, oracle),
        "ece": round(float(expected_calibration_error(y, score, bins=15)), 4),
        # the ECE these probabilities would have if calibrated, and how likely the one seen is then
        "ece_if_calibrated": round(reference["mean"], 4),
        "ece_p_value": round(reference["p_value"], 3),
        "strata": strata_aucs(y, score, diameter),
    }


def miscalibration(y, raw, reported) -> dict:
    """Is a cell's miscalibration a scale or a shift? Mean predicted (as reported) vs observed
    malignancy, and the cell's own best temperature, and temperature + bias, fitted on the network's
    raw probabilities of that cell with the ECE each would give. Diagnosis only."""
    from core.model.calibration import apply_temperature, fit_temperature, fit_temperature_bias

    t = fit_temperature(y, raw)
    tb, b = fit_temperature_bias(y, raw)
    return {
        "mean_predicted": round(float(np.mean(reported)), 4),
        "observed": round(float(np.mean(y)), 4),
        "best_temperature": round(t, 4),
        "ece_best_temperature": round(float(expected_calibration_error(y, apply_temperature(raw, t))), 4),
        "best_temperature_bias": [round(tb, 4), round(b, 4)],
        "ece_best_temperature_bias": round(
            float(expected_calibration_error(y, apply_temperature(raw, tb, b))), 4
        ),
    }


def verdicts(cell: dict, nominal_auc: float | None) -> dict:
    """The floors of issue 20 for one cell (``None`` where an AUC is undefined)."""
    auc, d, o = cell["auc"], cell["diameter_auc"], cell["oracle_auc"]
    return {
        "beats_diameter": None if auc is None or d is None else auc - d >= FLOORS["beats_diameter"] - 1e-9,
        "near_oracle": None if auc is None or o is None else o - auc <= FLOORS["oracle_gap"] + 1e-9,
        "holds_nominal": None
        if auc is None or nominal_auc is None
        else nominal_auc - auc <= FLOORS["nominal_loss"] + 1e-9,
        "ece_within_floor": None
        if not isinstance(cell.get("ece"), int | float) or not np.isfinite(cell["ece"])
        else cell["ece"] <= FLOORS["ece"] + 1e-9,
    }


def beyond_size(y_val, p_val, d_val, cells: dict, samples: int, seed: int) -> dict:
    """Logistic regression of malignancy on (diameter, model logit) fitted on validation: the score's
    standardised coefficient with a bootstrap interval (refits on resampled validation nodules), and
    in each cell the AUC of that combination beside the diameter's."""
    x_val = np.column_stack([d_val, _logit(p_val)])

    def coefficient(x, y) -> float:
        if len(set(y.tolist())) < 2:
            return float("nan")
        return float(LogisticRegression().fit(x, y).weights[2])

    fitted = LogisticRegression().fit(x_val, y_val)
    lo, hi = bootstrap_interval(coefficient, (x_val, y_val), samples=samples, seed=seed)
    per_cell = {
        name: _auc(y, fitted.predict_proba(np.column_stack([d, _logit(p)])))
        for name, (y, p, d) in cells.items()
    }
    return {
        "fitted_on": "val (nominal protocol)",
        "n_val": len(y_val),
        "score_coefficient": round(float(fitted.weights[2]), 4),
        "score_coefficient_95ci": [round(lo, 4), round(hi, 4)] if np.isfinite(lo) else None,
        "diameter_coefficient": round(float(fitted.weights[1]), 4),
        "note": "coefficients per standard deviation of each input (diameter, model logit)",
        "combined_auc": per_cell,
    }


def run_matrix(
    model,
    card: dict,
    pool: Sequence[LidcNodule],
    *,
    cells: Sequence[str] = tuple(MATRIX),
    nodules: int | None = None,
    seed: int = 20,
    samples: int = 1000,
    chest_size: int = 512,
    device: str = "cpu",
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """The protocol matrix of ``model`` (its ``card`` gives the preprocessing and temperature) on the
    reserved split of ``pool``; ``nodules`` evenly spaced nodules instead of all for a quick check."""
    from core.model.patches import PatchConfig

    patch = PatchConfig.from_dict(card["preprocessing"])
    report, note = probabilities_as_reported(card)
    store: dict = {}

    def spec_for(split: str, protocol) -> DatasetSpec:
        return DatasetSpec(
            split=split, seed=seed, variants=0, patch=patch, protocol=protocol, chest_size=chest_size
        )

    def chosen(split: str) -> list[LidcNodule]:
        selected = spec_for(split, NOMINAL).select(pool)
        if nodules is None or nodules >= len(selected):
            return selected
        return [selected[i] for i in np.linspace(0, len(selected) - 1, nodules).round().astype(int)]

    def scored(split: str, name: str, protocol):
        chosen_nodules = chosen(split)
        full = len(chosen_nodules) == len(spec_for(split, protocol).select(pool))
        step = None if progress is None else (lambda done, total: progress(f"{split} {name}", done, total))
        data = render(spec_for(split, protocol), chosen_nodules, full and chest_size == 512, store, step)
        keep = data.labels >= 0
        raw = nodule_scores(model, data, device)[keep]
        return data.labels[keep].astype(int), raw, data.diameters[keep].astype(float), data, keep

    train = [n for n in spec_for("train", NOMINAL).select(pool) if n.label != "indeterminate"]
    oracle = LogisticRegression().fit(features(train), labels_of(train))
    test_nodules = [n for n in chosen("test") if n.label != "indeterminate"]
    oracle_scores = oracle.predict_proba(features(test_nodules))
    results, raw = {}, {}
    for name in cells:
        y, p_raw, d, data, keep = scored("test", name, MATRIX[name])
        if list(data.nodule_ids[keep]) != [n.nodule_id for n in test_nodules]:
            raise RuntimeError("the cells were not rendered from the same nodules")
        p = report(p_raw)
        results[name] = {"protocol": MATRIX[name].to_dict()} | cell_figures(
            y, p, d, oracle_scores, samples, seed
        )
        if len(set(y.tolist())) == 2:
            results[name]["miscalibration"] = miscalibration(y, p_raw, p)
        raw[name] = (y, p, d)
    nominal_auc = results.get(NOMINAL_CELL, {}).get("auc")
    for cell in results.values():
        cell["verdicts"] = verdicts(cell, nominal_auc)
    y_val, p_val, d_val, _, _ = scored("val", NOMINAL_CELL, NOMINAL)
    p_val = report(p_val)
    return {
        "split": "test",
        "render_seed": seed,
        "nodules": len(test_nodules),
        "probabilities": note,
        "floors": FLOORS,
        "nominal_cell": NOMINAL_CELL if NOMINAL_CELL in results else None,
        "baselines_fitted_on": "train",
        "cells": results,
        "beyond_size": beyond_size(y_val, p_val, d_val, raw, samples, seed),
    }


def markdown(result: dict) -> str:
    """The matrix as a Markdown table, and the beyond-size line under it."""

    def f(value, digits=3) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    def mark(value) -> str:
        return {True: "yes", False: "**no**", None: "n/a"}[value]

    lines = [
        "| cell | AUC | diameter AUC | difference (95 % CI) | oracle AUC | ECE (if calibrated; p) "
        "| > diameter +0.01 | oracle -0.015 | nominal -0.01 | ECE <= 0.08 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in result["cells"].items():
        ci = c["auc_minus_diameter_95ci"]
        diff = f"{c['auc_minus_diameter']:+.3f}" if c["auc_minus_diameter"] is not None else "n/a"
        diff += f" ({ci[0]:+.3f} to {ci[1]:+.3f})" if ci else ""
        v = c["verdicts"]
        ece = f(c["ece"])
        if c.get("ece_if_calibrated") is not None:
            ece += f" ({c['ece_if_calibrated']:.3f}; p {c['ece_p_value']:.3f})"
        lines.append(
            f"| {name} | {f(c['auc'])} | {f(c['diameter_auc'])} | {diff} | {f(c['oracle_auc'])} "
            f"| {ece} | {mark(v['beats_diameter'])} | {mark(v['near_oracle'])} "
            f"| {mark(v['holds_nominal'])} | {mark(v.get('ece_within_floor'))} |"
        )
    lines += ["", *miscalibration_table(result)]
    b = result["beyond_size"]
    ci = b["score_coefficient_95ci"]
    lines += [
        "",
        f"{result['nodules']} labelled nodules of the reserved split, rendered with seed "
        f"{result['render_seed']}; ECE (15 bins) of {result['probabilities']}; in brackets the ECE the "
        "same probabilities would have if perfectly calibrated (labels drawn from them; its sampling "
        "error at this many nodules) and the share of such draws at least as large as the ECE seen.",
        f"Beyond size: logistic regression of malignancy on diameter + model logit fitted on {b['n_val']} "
        f"validation nodules: score coefficient {b['score_coefficient']:+.3f} per SD"
        + (f" (95 % CI {ci[0]:+.3f} to {ci[1]:+.3f})" if ci else "")
        + f", diameter {b['diameter_coefficient']:+.3f} per SD.",
    ]

    def span(s: dict) -> str:
        lo, hi = s["diameter_mm"]
        return f">= {lo:g} mm" if hi is None else f"{lo:g}-{hi:g} mm"

    if result["nominal_cell"]:
        strata = result["cells"][result["nominal_cell"]]["strata"]
        lines.append(
            "AUC within diameter strata (nominal cell, model / diameter): "
            + "; ".join(
                f"{span(s)} (n={s['n']}, {s['malignant']} malignant) {f(s['auc'])} / {f(s['diameter_auc'])}"
                for s in strata
            )
        )
    return "\n".join(lines)


def miscalibration_table(result: dict) -> list[str]:
    """Per cell: mean predicted vs observed, and the cell's own best temperature / temperature + bias."""
    lines = [
        "| cell | mean predicted | observed | ECE | own best T (ECE) | own best T, bias (ECE) |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in result["cells"].items():
        m = c.get("miscalibration")
        if m is None:
            continue
        t, b = m["best_temperature_bias"]
        lines.append(
            f"| {name} | {m['mean_predicted']:.3f} | {m['observed']:.3f} | {c['ece']:.3f} "
            f"| {m['best_temperature']:.3f} ({m['ece_best_temperature']:.3f}) "
            f"| {t:.3f}, {b:+.3f} ({m['ece_best_temperature_bias']:.3f}) |"
        )
    return lines


def card_record(result: dict, date: str) -> dict:
    """What a model card keeps of a matrix run (``bench_robustness.py --record``): per cell the AUC,
    the diameter's, their difference and its interval, the oracle's, the ECE and the floors' verdicts;
    where and how it was rendered. The strata and the miscalibration diagnosis stay in the JSON."""
    keep = ("n", "auc", "diameter_auc", "auc_minus_diameter", "auc_minus_diameter_95ci", "oracle_auc", "ece")
    keep += ("ece_if_calibrated", "ece_p_value")
    return {
        "split": result["split"],
        "render_seed": result["render_seed"],
        "nodules": result["nodules"],
        "date": date,
        "probabilities": result["probabilities"],
        "floors": result["floors"],
        "cells": {
            name: {k: cell.get(k) for k in keep} | {"verdicts": cell.get("verdicts")}
            for name, cell in result["cells"].items()
        },
        "beyond_size": result.get("beyond_size"),
    }


def card_summary(card: dict) -> str:
    """One line on a card's recorded protocol matrix ("" when it has none), for the models page."""
    record = card.get("robustness")
    cells = record.get("cells") if isinstance(record, dict) else None
    cells = {k: c for k, c in cells.items() if isinstance(c, dict)} if isinstance(cells, dict) else {}
    aucs = [c["auc"] for c in cells.values() if isinstance(c.get("auc"), int | float)]
    eces = [c["ece"] for c in cells.values() if isinstance(c.get("ece"), int | float)]
    if not aucs:
        return ""
    verdicts = [c.get("verdicts") if isinstance(c.get("verdicts"), dict) else {} for c in cells.values()]
    beats = sum(bool(v.get("beats_diameter")) for v in verdicts)
    text = f"{len(cells)} protocols: AUC {min(aucs):.3f}-{max(aucs):.3f}"
    if eces:
        text += f", ECE <= {max(eces):.3f}"
    return text + f"; beats diameter (+0.01) in {beats} of {len(cells)}"
