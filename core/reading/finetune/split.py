"""The library's labelled nodules split by study into a training and a held-out part (see the package)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from core.model.patches import PatchConfig
from core.reading.finetune import phantom_mix
from core.reading.library import Library
from core.training.data import NoduleDataset, subset

MIN_STUDIES = 2  # one to learn from, one held out to check the new model
SPLIT_TRIES = 200


class FinetuneError(Exception):
    """Fine-tuning cannot start (too few studies, no usable entries...); the message says why."""


class FinetuneData(NamedTuple):
    train: NoduleDataset
    val: NoduleDataset
    description: dict


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


def build_finetune_data(
    library: Library,
    patch: PatchConfig,
    with_phantoms: bool = False,
    seed: int = 0,
    val_fraction: float = 0.25,
    progress: Callable[[int, int], None] | None = None,
    randomise: bool = False,
) -> FinetuneData:
    """The library's entries split by study into training and held-out parts (see module docstring).
    ``randomise``: the phantom nodules mixed in are rendered under random scan protocols.

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
            entries, damaged, data, usable, data_used, studies, patch, seed, val_fraction, progress, randomise
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
        phantoms = phantom_mix.phantom_train_data(patch, progress, randomise)
        phantom_count = len(phantoms.labels)
        train, repeats = phantom_mix.mix(library_train, phantoms)
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
        "phantom_protocols": ("random" if randomise else "nominal") if with_phantoms else None,
        "library_repeats": repeats,
        "train_labels": _counts(library_train),
        "val_labels": _counts(val),
        "seed": seed,
        "val_fraction": val_fraction,
        "preprocessing": patch.to_dict(),
    }
    return FinetuneData(train, val, description)


def _single_study(
    entries, damaged, data, usable, data_used, studies, patch, seed, val_fraction, progress, randomise
):
    """One labelled study and phantoms mixed in: every library nodule trains; the phantom validation
    split (never trained on) is held out, so the check is "did it keep what it knew"."""
    phantoms = phantom_mix.phantom_train_data(patch, progress, randomise)
    train, repeats = phantom_mix.mix(data_used, phantoms)
    val = phantom_mix.phantom_val_data(patch, progress)
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
        "phantom_protocols": "random" if randomise else "nominal",
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
            f"; plus {d['phantom_nodules']} phantom nodules"
            + (" under random scan protocols" if d.get("phantom_protocols") == "random" else "")
            + f" to keep what the model knew (yours repeated "
            f"{d.get('library_repeats', 1)}x so they weigh about {phantom_mix.LIBRARY_SHARE:.0%})"
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
