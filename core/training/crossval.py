"""k-fold cross-validation by patient: the paper's evaluation protocol without the authors' leak.

The authors split LIDC by nodule, so one patient's nodules sat on both sides; here every patient's
nodules fall in exactly one fold (``assign_folds``: folds balanced by each class's share, like
scikit-learn's StratifiedGroupKFold, with the labels benign / malignant / indeterminate). For each
fold MTMR-Net is trained with the engine's ``train`` generator on the other folds' patients, with
**early stopping**: a stratified inner validation part of those training patients (``inner_val``,
by patient too) picks the best epoch by AUC, ``config.epochs`` is the most it may run and
``config.patience`` the epochs without improvement it waits. The held-out fold is then scored once:
accuracy, sensitivity, specificity and AUC at ``config.threshold`` (the paper's 0.5) on its
labelled nodules, and per attribute the mean absolute error and the share within +/-1 on the
original rating scales (indeterminate nodules included). Beside the model, each fold gets the two
baselines of ``core.training.baselines`` fitted on the fold's training patients (diameter alone,
and the rating oracle: the readers' eight mean ratings plus diameter).

Under ``torchrun`` every rank runs the same folds (the assignment is deterministic) and trains on its
shard; rank 0 scores the folds and returns the result, the other ranks return ``{}``.
"""

from __future__ import annotations

import math
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from core.nodule.ratings import ATTRIBUTES, to_rating_scale
from core.training.data import LABELS, NoduleDataset
from core.training.metrics import classification_metrics
from core.training.trainer import TrainConfig

METRICS = ("accuracy", "sensitivity", "specificity", "auc")

# MTMR-NET.md: published LIDC-IDRI malignancy figures, each on its own subset and split.
PUBLISHED = (
    (
        "HSCNN (3D, interpretable, attributes)",
        "84.2",
        "attribute accuracies: subtlety 71.9, sphericity 55.2, margin 72.5, texture 83.4",
    ),
    (
        "X-Caps (capsules, attributes)",
        "86.4",
        "subtlety 90.4, sphericity 85.4, margin 84.1, lobulation 70.7, spiculation 75.2, texture 93.1",
    ),
    ("multi-crop CNN", "87.1", ""),
    ("DeepLung", "90.4", "sensitivity 81.4"),
    ("NASLung", "91.7", "sensitivity 90.2, specificity 92.9"),
    ("3D-MCN", "93.1", "AUC 0.964"),
    ("NoduleX", "", "AUC about 0.99 (>1000 nodules)"),
)
NOT_COMPARABLE = (
    "Each published figure comes from its own subset of LIDC-IDRI nodules and its own split, several "
    "of them by nodule (one patient's nodules on both sides); ours splits by patient: not directly "
    "comparable."
)


def assign_folds(
    patient_ids: Sequence[str], labels: Sequence[int], folds: int, seed: int = 0
) -> dict[str, int]:
    """Patient -> fold (0-based), every patient in exactly one fold, no fold empty.

    ``patient_ids`` and ``labels`` are per nodule. Patients are dealt out in a seeded order, the most
    lopsided first, each to the fold where the spread of every class's share across folds stays
    smallest (ties: the fold with the fewest nodules). Raises ``ValueError`` for fewer than 2 folds
    or more folds than patients.
    """
    patients = sorted(set(map(str, patient_ids)))
    if folds < 2:
        raise ValueError(f"at least 2 folds are needed, not {folds}")
    if folds > len(patients):
        raise ValueError(f"{folds} folds need at least {folds} patients; there are {len(patients)}")
    classes = sorted(LABELS.values())
    row = {p: i for i, p in enumerate(patients)}
    counts = np.zeros((len(patients), len(classes)))
    for patient, label in zip(map(str, patient_ids), labels, strict=True):
        counts[row[patient], classes.index(int(label))] += 1
    present = counts.sum(0) > 0
    counts, totals = counts[:, present], counts.sum(0)[present]
    rng = np.random.default_rng([seed, 31])
    order = rng.permutation(len(patients))
    order = order[np.argsort(-np.std(counts[order], axis=1), kind="stable")]
    per_fold = np.zeros((folds, counts.shape[1]))
    members: list[list[int]] = [[] for _ in range(folds)]
    for p in order:
        best, best_key = 0, None
        for f in range(folds):
            per_fold[f] += counts[p]
            key = (float(np.mean(np.std(per_fold / totals, axis=0))), per_fold[f].sum() - counts[p].sum(), f)
            per_fold[f] -= counts[p]
            if best_key is None or key < best_key:
                best, best_key = f, key
        per_fold[best] += counts[p]
        members[best].append(p)
    for f in range(folds):  # rare with few patients: give an empty fold a patient of the fullest
        if not members[f]:
            donor = max(range(folds), key=lambda g: len(members[g]))
            members[f].append(members[donor].pop())
    return {patients[p]: f for f, group in enumerate(members) for p in group}


def dataset_baselines(train: NoduleDataset, evaluated: NoduleDataset, threshold: float = 0.5) -> dict | None:
    """Diameter-only and rating-oracle metrics on ``evaluated``'s labelled nodules, fitted on ``train``'s
    (``core.training.baselines`` on a ``NoduleDataset``). None when either side lacks a class."""
    from core.training.baselines import LogisticRegression

    def features(data: NoduleDataset, rows: np.ndarray) -> np.ndarray:
        ratings = to_rating_scale(data.attributes[rows])
        return np.hstack([ratings, data.diameters[rows, None].astype(np.float64)])

    fit_rows, eval_rows = train.labels >= 0, evaluated.labels >= 0
    y_fit, y_eval = train.labels[fit_rows].astype(int), evaluated.labels[eval_rows].astype(int)
    if len(set(y_fit.tolist())) < 2 or not len(y_eval):
        return None
    x_fit, x_eval = features(train, fit_rows), features(evaluated, eval_rows)
    fill = np.nan_to_num(np.nanmean(x_fit, axis=0), nan=0.0)  # an unrated attribute reads as the mean
    x_fit = np.where(np.isnan(x_fit), fill, x_fit)
    x_eval = np.where(np.isnan(x_eval), fill, x_eval)
    oracle = LogisticRegression().fit(x_fit, y_fit)
    size_only = LogisticRegression().fit(x_fit[:, -1:], y_fit)
    return {
        "diameter_only": classification_metrics(y_eval, size_only.predict_proba(x_eval[:, -1:]), threshold),
        "rating_oracle": classification_metrics(y_eval, oracle.predict_proba(x_eval), threshold),
    }


def crossval(
    dataset: NoduleDataset,
    folds: int = 5,
    config: TrainConfig | None = None,
    seed: int = 0,
    inner_val: float = 0.15,
    progress: Callable[[dict], None] | None = None,
    model_factory: Callable[[], object] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> dict:
    """Cross-validate MTMR-Net on ``dataset`` by patient (see module docstring).

    ``seed`` fixes the folds and inner validation parts; ``config.seed + fold`` the initial weights
    and batch order of each fold. ``model_factory`` builds a fresh model per fold (default: the
    compact MTMR-Net sized to the patches). ``progress`` receives the trainer's events (steps left
    out) with ``"fold"`` and ``"folds"`` added, then ``{"event": "fold", ...}`` as each fold is scored.
    """
    import torch

    from core.model.device import pick_device
    from core.training.data import subset
    from core.training.trainer import aggregate, nodule_metrics, slice_outputs, train

    config = config or TrainConfig()
    if not 0.0 < inner_val < 0.5:
        raise ValueError(f"inner_val must be between 0 and 0.5, not {inner_val}")
    started = time.perf_counter()
    fold_of = assign_folds(dataset.patient_ids.tolist(), dataset.labels.tolist(), folds, seed)
    nodule_fold = np.array([fold_of[str(p)] for p in dataset.patient_ids])
    rank = _rank()
    records, predictions = [], []
    for fold in range(folds):
        test_rows = nodule_fold == fold
        pool = ~test_rows
        pool_patients = dataset.patient_ids[pool].tolist()
        if len(set(pool_patients)) < 2:
            raise ValueError("each fold's training part needs at least 2 patients (one for inner validation)")
        inner_folds = min(max(2, round(1 / inner_val)), len(set(pool_patients)))
        inner = assign_folds(pool_patients, dataset.labels[pool].tolist(), inner_folds, seed + 1000 + fold)
        val_rows = pool & np.array([inner.get(str(p), -1) == 0 for p in dataset.patient_ids])
        train_rows = pool & ~val_rows
        train_data, val_data = subset(dataset, train_rows), subset(dataset, val_rows)
        test_data = subset(dataset, test_rows)
        torch.manual_seed(config.seed + fold)
        model = model_factory() if model_factory is not None else _compact_model(dataset)
        done = None
        for event in train(replace(config, seed=config.seed + fold), train_data, val_data, model, cancelled):
            if event["event"] == "done":
                done = event
            if progress is not None and event["event"] != "step":
                progress(
                    {k: v for k, v in event.items() if k != "model"} | {"fold": fold + 1, "folds": folds}
                )
        if rank != 0:
            continue
        device = pick_device(config.device)
        trained = done["model"].to(device)
        slice_probs, slice_attrs = slice_outputs(trained, test_data, device)
        metrics = nodule_metrics(test_data, slice_probs, slice_attrs, config.threshold)
        probabilities, _ = aggregate(test_data, slice_probs, slice_attrs)
        predictions += [
            {
                "nodule_id": str(n),
                "patient_id": str(p),
                "fold": fold + 1,
                "label": int(y),
                "probability": float(q),
            }
            for n, p, y, q in zip(
                test_data.nodule_ids, test_data.patient_ids, test_data.labels, probabilities, strict=True
            )
        ]
        record = {
            "fold": fold + 1,
            "test_patients": sorted(set(test_data.patient_ids.tolist())),
            "patients": {
                "train": len(set(train_data.patient_ids.tolist())),
                "val": len(set(val_data.patient_ids.tolist())),
                "test": len(set(test_data.patient_ids.tolist())),
            },
            "nodules": {
                "train": len(train_data.labels),
                "val": len(val_data.labels),
                "test": len(test_data.labels),
            },
            "best_epoch": done["best_epoch"],
            "seconds": round(done["seconds"], 1),
            "metrics": metrics,
            "baselines": dataset_baselines(subset(dataset, pool), test_data, config.threshold),
        }
        records.append(record)
        if progress is not None:
            progress({"event": "fold", "fold": fold + 1, "folds": folds, "result": record})
        trained.cpu()
    if rank != 0:
        return {}
    return _result(
        dataset, records, predictions, folds, config, seed, inner_val, time.perf_counter() - started
    )


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _compact_model(dataset: NoduleDataset):
    from models.mtmr import MTMRNet, MTMRNetConfig

    _, channels, size, _ = dataset.patches.shape
    return MTMRNet(replace(MTMRNetConfig.compact(), input_size=int(size), in_channels=int(channels)))


def mean_sd(values) -> dict:
    """Mean and sample standard deviation over the finite values (folds where a metric is defined)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": float("nan"), "sd": float("nan"), "n": 0}
    sd = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return {"mean": float(np.mean(finite)), "sd": sd, "n": len(finite)}


def _result(dataset, records, predictions, folds, config, seed, inner_val, seconds) -> dict:
    labels = np.array([p["label"] for p in predictions])
    probabilities = np.array([p["probability"] for p in predictions])
    labelled = labels >= 0
    baselines = {}
    for name in ("diameter_only", "rating_oracle"):
        baselines[name] = {
            metric: mean_sd(r["baselines"][name][metric] if r["baselines"] else None for r in records)
            for metric in METRICS
        }
    return {
        "protocol": {
            "folds": folds,
            "split_by": "patient",
            "stratified_by": "label (benign / malignant / indeterminate)",
            "seed": seed,
            "selection": (
                f"early stopping on validation AUC over an inner validation part ({inner_val:.0%} of each "
                f"fold's training patients, by patient); at most {config.epochs} epochs, "
                f"patience {config.patience}"
            ),
            "inner_val": inner_val,
            "threshold": config.threshold,
            "train_config": config.to_dict(),
            "seconds": round(seconds, 1),
        },
        "data": {
            "patients": len(set(dataset.patient_ids.tolist())),
            "nodules": len(dataset.labels),
            "slices": len(dataset.patches),
            "labels": {name: int((dataset.labels == value).sum()) for name, value in LABELS.items()},
        },
        "folds": records,
        "summary": {metric: mean_sd(r["metrics"][metric] for r in records) for metric in METRICS},
        "baselines": baselines,
        "attributes": {
            name: {
                "mae": mean_sd(r["metrics"]["attributes"][name]["mae"] for r in records),
                "within_1": mean_sd(r["metrics"]["attributes"][name]["within_1"] for r in records),
            }
            for name in ATTRIBUTES
        },
        "pooled": classification_metrics(labels[labelled], probabilities[labelled], config.threshold),
        "predictions": predictions,
    }


# -- the table -------------------------------------------------------------------------------------


def _pm(stat: dict, scale: float = 1.0, digits: int = 1) -> str:
    if not stat["n"]:
        return "n/a"
    return f"{stat['mean'] * scale:.{digits}f} +/- {stat['sd'] * scale:.{digits}f}"


def _value(value, scale: float = 1.0, digits: int = 1) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value * scale:.{digits}f}"


def _columns(rows: list[list[str]], right: set[int] = frozenset()) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def format_table(result: dict) -> str:
    """The result as plain-text tables: per fold, mean +/- sd, attributes, and the published anchors."""
    protocol, data = result["protocol"], result["data"]
    labels = data["labels"]
    intro = [
        f"MTMR-Net, {protocol['folds']}-fold cross-validation split by patient (stratified by label): "
        f"{data['patients']} patients, {data['nodules']} nodules ({labels['benign']} benign, "
        f"{labels['malignant']} malignant, {labels['indeterminate']} indeterminate: attributes only).",
        f"Model selection: {protocol['selection']}. Threshold {protocol['threshold']}.",
    ]
    lines = [textwrap.fill(paragraph, 100) for paragraph in intro] + [""]
    rows = [["fold", "patients", "nodules (labelled)", "accuracy %", "sensitivity %", "specificity %", "AUC"]]
    rows[0] += ["diameter-only AUC", "rating-oracle AUC", "best epoch"]
    for r in result["folds"]:
        m, b = r["metrics"], r["baselines"]
        rows.append(
            [str(r["fold"]), str(r["patients"]["test"]), f"{r['nodules']['test']} ({m['n']})"]
            + [_value(m[k], 100) for k in METRICS[:3]]
            + [_value(m["auc"], 1, 3)]
            + [_value(b[k]["auc"], 1, 3) if b else "n/a" for k in ("diameter_only", "rating_oracle")]
            + [str(r["best_epoch"])]
        )
    s, base = result["summary"], result["baselines"]
    rows.append(
        ["mean +/- sd", "", ""]
        + [_pm(s[k], 100) for k in METRICS[:3]]
        + [
            _pm(s["auc"], 1, 3),
            _pm(base["diameter_only"]["auc"], 1, 3),
            _pm(base["rating_oracle"]["auc"], 1, 3),
        ]
        + [""]
    )
    pooled = result["pooled"]
    rows.append(  # every fold's held-out nodules scored together (each by its own fold's model)
        ["pooled", str(data["patients"]), f"{data['nodules']} ({pooled['n']})"]
        + [_value(pooled[k], 100) for k in METRICS[:3]]
        + [_value(pooled["auc"], 1, 3), "", "", ""]
    )
    lines += _columns(rows, right=set(range(1, len(rows[0]))))
    lines += ["", "Attributes (original rating scales, all held-out nodules, mean +/- sd over folds):"]
    attribute_rows = [["attribute", "absolute error", "within +/-1 %"]]
    for name in ATTRIBUTES:
        stat = result["attributes"][name]
        attribute_rows.append([name, _pm(stat["mae"], 1, 2), _pm(stat["within_1"], 100)])
    lines += _columns(attribute_rows, right={1, 2})
    ours = (
        f"sensitivity {_pm(s['sensitivity'], 100)}, specificity {_pm(s['specificity'], 100)}, "
        f"AUC {_pm(s['auc'], 1, 3)}; attributes within +/-1: the table above"
    )
    published = [
        ["method", "accuracy %", "other"],
        ["MTMR-Net, this run (by patient)", _pm(s["accuracy"], 100), ours],
    ]
    published += [list(row) for row in PUBLISHED]
    lines += ["", "Published on LIDC-IDRI malignancy (docs: MTMR-NET.md), beside this run:"]
    lines += _columns(published)
    lines += [textwrap.fill(NOT_COMPARABLE, 100)]
    return "\n".join(lines)
