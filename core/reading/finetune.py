"""Fine-tuning the active model on the reader's own confirmed nodules (the CLI and the trainer dialog).

The pieces, each usable on its own:

* ``build_finetune_data``: the library's entries (optionally mixed with the phantom train split, to
  keep what the model knew), a validation part held out by study, never by nodule, so no study is on
  both sides. Studies are the entries' study UIDs (the series UID when the study's is unknown); the
  split is drawn with a fixed seed, preferring one whose held-out part holds both benign and
  malignant nodules. The phantom nodules only ever train.
* ``FinetuneOptions``: fine-tuning defaults (few epochs, a lower learning rate, the trunk at a tenth
  of it, or frozen) turned into the engine's ``TrainConfig``.
* ``compare``: several models on the same held-out data, side by side: AUC (where both classes are
  there), accuracy, sensitivity and specificity at each model's own threshold, attribute MAE; NaN
  where a figure cannot be had (one class only, no rated attribute). ``not_worse`` says whether the
  new model may replace the active one without a second thought.
* ``run_finetune``: the whole run as a generator of the engine's events (``data``, ``resumed``,
  ``step``, ``epoch``, ``done``) ending with ``finished`` (the new model, its card, the comparison).
  It never writes a version and never touches the active model or the library: keeping the new
  model (``keep``) is the caller's choice. With a ``state_path`` a cancelled, crashed or killed run
  continues from its last complete epoch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from core.model.patches import PatchConfig
from core.reading.library import Library
from core.training.data import NoduleDataset, subset
from core.util.json_safe import json_safe

MIN_STUDIES = 2  # one to learn from, one held out to check the new model
SPLIT_TRIES = 200
MAE_TOLERANCE = 0.05  # rating units: a new model this much worse on attributes is "worse"


class FinetuneError(Exception):
    """Fine-tuning cannot start (too few studies, no usable entries...); the message says why."""


@dataclass(frozen=True)
class FinetuneOptions:
    epochs: int = 5
    lr: float = 1e-3  # the heads (from-scratch training uses 3e-3)
    trunk_lr_factor: float = 0.1  # the trunk learns at a tenth of that...
    freeze_trunk: bool = False  # ...or not at all
    batch_size: int = 32
    with_phantoms: bool = False  # mix in the phantom train split to keep what the model knew
    val_fraction: float = 0.25  # of the library's studies, at least one
    seed: int = 0
    device: str = "auto"
    patience: int = 5
    step_size: int = 10

    def to_dict(self) -> dict:
        return asdict(self)

    def train_config(self, threshold: float = 0.5):
        from core.training.trainer import TrainConfig

        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            trunk_lr_factor=self.trunk_lr_factor,
            freeze_trunk=self.freeze_trunk,
            step_size=self.step_size,
            patience=self.patience,
            seed=self.seed,
            device=self.device,
            threshold=threshold,
        )


class FinetuneData(NamedTuple):
    train: NoduleDataset
    val: NoduleDataset
    description: dict


# -- data ------------------------------------------------------------------------------------------


def split_by_study(
    data: NoduleDataset, val_fraction: float = 0.25, seed: int = 0
) -> tuple[list[str], list[str]]:
    """(train studies, held-out studies) of ``data`` (``patient_ids``), at least one of each.

    Seeded; among the first ``SPLIT_TRIES`` draws the first whose held-out part has both classes
    (and whose training part has both, too, if any has) wins, else the first draw.
    """
    studies = sorted(set(data.patient_ids.tolist()))
    if len(studies) < MIN_STUDIES:
        raise FinetuneError(f"{len(studies)} studies: at least {MIN_STUDIES} are needed to hold one out")
    count = min(max(1, round(val_fraction * len(studies))), len(studies) - 1)
    classes = {s: set() for s in studies}
    for study, label in zip(data.patient_ids.tolist(), data.labels.tolist(), strict=True):
        if label >= 0:
            classes[study].add(label)
    rng = np.random.default_rng([seed, 23])
    best, best_score = None, (-1, -1)
    for _ in range(SPLIT_TRIES):
        order = rng.permutation(len(studies))
        val = sorted(studies[i] for i in order[:count])
        train = sorted(studies[i] for i in order[count:])
        score = (
            len(set().union(*(classes[s] for s in val))) == 2,
            len(set().union(*(classes[s] for s in train))) == 2,
        )
        if best is None or score > best_score:
            best, best_score = (train, val), score
        if all(score):
            break
    return best


def phantom_train_data(
    patch: PatchConfig, progress: Callable[[int, int], None] | None = None
) -> NoduleDataset:
    """The phantom train split cut with ``patch`` (one clean rendering per nodule; cached)."""
    from core.training.data import DatasetSpec, cached_dataset

    return cached_dataset(DatasetSpec(split="train", seed=0, variants=0, patch=patch), progress=progress)


def build_finetune_data(
    library: Library,
    patch: PatchConfig,
    with_phantoms: bool = False,
    seed: int = 0,
    val_fraction: float = 0.25,
    progress: Callable[[int, int], None] | None = None,
) -> FinetuneData:
    """The library's entries split by study into training and held-out parts (see module docstring).

    Raises ``FinetuneError`` when the library holds too few labelled studies, and ``LibraryError``
    when entries were cut with another preprocessing than ``patch``.
    """
    entries, damaged = library.scan()
    data = library.dataset(patch, entries)
    usable = (data.labels >= 0) | ~np.isnan(data.attributes).all(axis=1)
    data_used = subset(data, usable)
    studies = sorted(set(data_used.patient_ids.tolist()))
    if len(studies) < MIN_STUDIES and with_phantoms and studies:
        return _single_study(
            entries, damaged, data, usable, data_used, studies, patch, seed, val_fraction, progress
        )
    if len(studies) < MIN_STUDIES:
        raise FinetuneError(
            f"the library holds {int(usable.sum())} usable labelled nodules from {len(studies)} "
            f"{'study' if len(studies) == 1 else 'studies'}: fine-tuning needs nodules from at least "
            f"{MIN_STUDIES} studies (one to learn from, one held out to check the new model); "
            "confirm nodules in more studies first, or mix in the phantom nodules (then the phantom "
            "validation split is held out instead)"
        )
    train_studies, val_studies = split_by_study(data_used, val_fraction, seed)
    in_val = np.isin(data_used.patient_ids, val_studies)
    library_train, val = subset(data_used, ~in_val), subset(data_used, in_val)
    train = library_train
    phantom_count, repeats = 0, 1
    if with_phantoms:
        phantoms = phantom_train_data(patch, progress)
        phantom_count = len(phantoms.labels)
        train, repeats = mix(library_train, phantoms)
    description = {
        "source": "library" + (" + phantom train split" if with_phantoms else ""),
        "library_entries": len(entries),
        "unusable_entries": int((~usable).sum()),  # only an indeterminate (3) rating: nothing to learn
        "damaged_entries": [str(problem) for problem in damaged],  # unreadable files, left out
        "studies": len(studies),
        "train_studies": train_studies,
        "val_studies": val_studies,
        "train_nodules": len(library_train.labels),
        "val_nodules": len(val.labels),
        "phantom_nodules": phantom_count,
        "library_repeats": repeats,
        "train_labels": _counts(library_train),
        "val_labels": _counts(val),
        "seed": seed,
        "val_fraction": val_fraction,
        "preprocessing": patch.to_dict(),
    }
    return FinetuneData(train, val, description)


LIBRARY_SHARE = 0.1  # mixed with the phantom split, the reader's nodules make about this share


def mix(library: NoduleDataset, phantoms: NoduleDataset) -> tuple[NoduleDataset, int]:
    """The library's nodules repeated so they weigh about ``LIBRARY_SHARE`` of a mix with the phantom
    train split (a handful of confirmed nodules would otherwise vanish among 1,780); and how often."""
    from core.training.labelled import concatenate

    repeats = max(1, round(LIBRARY_SHARE * len(phantoms.labels) / max(len(library.labels), 1)))
    return concatenate([*([library] * repeats), phantoms]), repeats


def phantom_val_data(patch: PatchConfig, progress: Callable[[int, int], None] | None = None) -> NoduleDataset:
    """The phantom validation split cut with ``patch`` (one clean rendering per nodule; cached)."""
    from core.training.data import DatasetSpec, cached_dataset

    return cached_dataset(DatasetSpec(split="val", seed=0, variants=0, patch=patch), progress=progress)


def _single_study(entries, damaged, data, usable, data_used, studies, patch, seed, val_fraction, progress):
    """One labelled study and phantoms mixed in: every library nodule trains; the phantom validation
    split (never trained on) is held out, so the check is "did it keep what it knew"."""
    phantoms = phantom_train_data(patch, progress)
    train, repeats = mix(data_used, phantoms)
    val = phantom_val_data(patch, progress)
    description = {
        "source": "library + phantom train split",
        "library_entries": len(entries),
        "unusable_entries": int((~usable).sum()),
        "damaged_entries": [str(problem) for problem in damaged],
        "studies": len(studies),
        "train_studies": studies,
        "val_studies": ["phantom validation split"],
        "train_nodules": len(data_used.labels),
        "val_nodules": len(val.labels),
        "phantom_nodules": len(phantoms.labels),
        "library_repeats": repeats,
        "train_labels": _counts(data_used),
        "val_labels": _counts(val),
        "seed": seed,
        "val_fraction": val_fraction,
        "preprocessing": patch.to_dict(),
    }
    return FinetuneData(train, val, description)


def describe(description: dict) -> str:
    """The data of a run in plain words (the dialog shows it; the CLI prints it)."""
    d = description
    held_out = (
        ", ".join(d["val_studies"])
        if d["val_studies"] == ["phantom validation split"]
        else (f"{len(d['val_studies'])} studies")
    )
    text = (
        f"{d['train_nodules']} library nodules from {len(d['train_studies'])} studies to learn from, "
        f"{d['val_nodules']} from {held_out} held out to check "
        f"({d['val_labels']['malignant']} malignant, {d['val_labels']['benign']} benign, "
        f"{d['val_labels']['unrated']} without a malignancy label)"
    )
    if d["phantom_nodules"]:
        text += (
            f"; plus {d['phantom_nodules']} phantom nodules to keep what the model knew (yours repeated "
            f"{d.get('library_repeats', 1)}x so they weigh about {LIBRARY_SHARE:.0%})"
        )
    if d["unusable_entries"]:
        text += f"; {d['unusable_entries']} entries without a usable rating left out"
    if d.get("damaged_entries"):
        text += f"; {len(d['damaged_entries'])} damaged library files left out"
    return text


def _counts(data: NoduleDataset) -> dict:
    return {
        "malignant": int((data.labels == 1).sum()),
        "benign": int((data.labels == 0).sum()),
        "unrated": int((data.labels < 0).sum()),
    }


# -- comparing -------------------------------------------------------------------------------------


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


# -- the run ---------------------------------------------------------------------------------------


def finetune_card(parent, config, data: FinetuneData, done: dict, comparison: dict) -> dict:
    """The new model's card: its parent, the data, the training and the comparison."""
    from core.training.trainer import manifest

    parent_card = parent.card
    name = str(parent_card.get("name", "mtmr"))
    d = data.description
    trained_on = (
        f"{parent_card.get('trained_on', 'unknown data')}; fine-tuned on {d['train_nodules']} "
        f"reader-confirmed nodules from {len(d['train_studies'])} studies of the local library"
        + (" mixed with the phantom train split" if d["phantom_nodules"] else "")
    )
    card = {
        "name": name if name.endswith("-ft") else f"{name}-ft",
        "trained_on": trained_on,
        "intended_use": parent_card.get("intended_use", "research demo; not for clinical use"),
        "parent": {
            "version_id": parent.id,
            "name": parent_card.get("name"),
            "version": parent_card.get("version"),
            "weights_sha256": parent_card.get("weights_sha256"),
        },
        "preprocessing": parent_card["preprocessing"],
        "training": config.to_dict()
        | {
            "kind": "finetune",
            "device": done["device"],
            "best_epoch": done["best_epoch"],
            "seconds": round(done["seconds"], 1),
        },
        "data": {
            "library": d,
            "train": manifest(
                data.train, "library-train" + ("+phantom-train" if d["phantom_nodules"] else "")
            ),
            "val": manifest(data.val, "library-holdout"),
        },
        "metrics": {
            "val": json_safe(comparison["new"]) | {"split": "library-holdout"},
            "comparison": json_safe(comparison),
        },
    }
    if "threshold" in parent_card:
        card["threshold"] = parent_card["threshold"]
    return json_safe(card)


def run_finetune(
    registry,
    library: Library,
    options: FinetuneOptions = FinetuneOptions(),
    state_path: str | Path | None = None,
    cancelled: Callable[[], bool] | None = None,
    parent_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[dict]:
    """Fine-tune the active model (or version ``parent_id``) on ``library``: yields ``{"event": ...}``.

    ``parent`` (which version it starts from, and any note on why it is the demo), ``data`` (the
    description of the split), then the engine's ``resumed`` / ``step`` / ``epoch`` / ``done``, then
    ``finished`` with ``model``, ``card``, ``comparison`` ({"active": ..., "new": ...}), ``verdict``
    (``not_worse``). ``TrainingCancelled`` and any error propagate; nothing is written but the
    training state at ``state_path``.
    """
    from core.model.device import pick_device
    from core.training.trainer import train

    parent = registry.get(parent_id) if parent_id else registry.active()
    yield {"event": "parent", "version": parent, "note": parent.note}
    model, card = registry.load(parent.id)
    parent = replace(parent, card=card)
    patch = PatchConfig.from_dict(card["preprocessing"])
    data = build_finetune_data(
        library, patch, options.with_phantoms, options.seed, options.val_fraction, progress
    )
    yield {"event": "data", "description": data.description, "text": describe(data.description)}
    threshold = float(card.get("threshold", 0.5))
    config = options.train_config(threshold)
    done = None
    for event in train(config, data.train, data.val, model, cancelled=cancelled, state_path=state_path):
        if event["event"] == "done":
            done = event
        yield event
    if done is None:  # another rank of a distributed run: rank 0 finishes
        return
    device = pick_device(options.device)
    before, _ = registry.load(parent.id)  # the parent's own weights (train() changed ``model``)
    comparison = compare(
        {"active": before, "new": done["model"]}, data.val, device, {"active": threshold, "new": threshold}
    )
    done["model"].cpu()
    new_card = finetune_card(parent, config, data, done, comparison)
    yield {
        "event": "finished",
        "model": done["model"],
        "card": new_card,
        "comparison": comparison,
        "verdict": not_worse(comparison),
        "parent": parent,
        "data": data.description,
    }


def keep(registry, finished: dict, activate: bool = False):
    """Store the new model as a version (and activate it when asked). Returns the ``Version``."""
    version = registry.add(finished["model"], finished["card"])
    if activate:
        version = registry.activate(version.id)
    return version
