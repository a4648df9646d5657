"""The library split by study for fine-tuning, and the phantom splits mixed into training only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.nodule.labels import NoduleLabel
from core.reading.finetune import phantom_mix
from core.reading.finetune.split import FinetuneError, build_finetune_data, describe, split_by_study
from core.reading.library import Library
from core.training.data import subset
from tests.core.reading.test_library import PATCH, fill, study_nodules, study_volume
from tests.core.training.fake_data import fake_dataset


def test_the_library_is_split_by_study_with_a_fixed_seed(setup):
    _, library = setup
    train, val, description = build_finetune_data(library, PATCH, seed=0)
    assert set(train.patient_ids) & set(val.patient_ids) == set()
    assert len(set(val.patient_ids)) == 1 and len(set(train.patient_ids)) == 3
    assert len(train.labels) + len(val.labels) == 8 and sorted(val.labels.tolist()) == [0, 1]
    assert description["val_studies"] == sorted(set(val.patient_ids.tolist()))
    assert description["phantom_nodules"] == 0 and description["val_labels"] == {
        "malignant": 1,
        "benign": 1,
        "unrated": 0,
    }
    again = build_finetune_data(library, PATCH, seed=0)
    assert again.description == description
    np.testing.assert_array_equal(again.train.patches, train.patches)
    assert (
        len({tuple(build_finetune_data(library, PATCH, seed=s).description["val_studies"]) for s in range(8)})
        > 1
    )
    assert "held out" in describe(description)


def test_the_split_prefers_both_classes_in_the_held_out_part():
    data = fake_dataset(24)  # one nodule per patient: 12 malignant, 11 benign, 1 indeterminate
    data.patient_ids[:] = [f"S{n // 6}" for n in range(24)]  # four studies...
    data.labels[:12] = 1  # ...the first two malignant only
    data.labels[12:23] = 0
    for seed in range(5):
        train, val = split_by_study(data, val_fraction=0.5, seed=seed)
        labels = set(data.labels[np.isin(data.patient_ids, val)].tolist()) - {-1}
        assert labels == {0, 1} and not set(train) & set(val)
    part = subset(data, np.isin(data.patient_ids, ["S1"]))
    assert len(part.labels) == 6 and part.nodule_index.max() == 5 and len(part.patches) == 18


def test_too_few_labelled_studies_stop_with_the_reason(tmp_path):
    library = Library(tmp_path)
    fill(library, studies=1)
    only_indeterminate = replace(study_nodules(2)[0], label=NoduleLabel(3.0))  # nothing to learn from
    library.add(study_volume(2), only_indeterminate, PATCH)
    with pytest.raises(FinetuneError, match=r"2 usable labelled nodules from 1 study.*at least 2 studies"):
        build_finetune_data(library, PATCH)


def test_phantoms_are_mixed_into_training_only(setup, monkeypatch):
    _, library = setup
    phantoms, asked = fake_dataset(10), []

    def rendered(patch, progress=None, randomise=False):
        asked.append(randomise)
        return phantoms

    monkeypatch.setattr(phantom_mix, "phantom_train_data", rendered)
    train, val, description = build_finetune_data(library, PATCH, with_phantoms=True)
    assert description["phantom_nodules"] == 10 and len(train.labels) == description["train_nodules"] + 10
    assert not any(p.startswith("LIDC") for p in val.patient_ids) and len(val.labels) == 2
    assert "10 phantom nodules to keep" in describe(description) and asked == [False]
    description = build_finetune_data(library, PATCH, with_phantoms=True, randomise=True).description
    assert asked == [False, True] and description["phantom_protocols"] == "random"
    assert "10 phantom nodules under random scan protocols" in describe(description)


def test_one_study_with_phantoms_holds_out_the_phantom_validation_split(tmp_path, monkeypatch):
    library = Library(tmp_path / "labels")
    fill(library, studies=1)
    size = PATCH.size
    phantoms = fake_dataset(nodules=40, size=size)
    val = fake_dataset(nodules=10, size=size, seed=3)
    monkeypatch.setattr(
        phantom_mix, "phantom_train_data", lambda patch, progress=None, randomise=False: phantoms
    )
    monkeypatch.setattr(phantom_mix, "phantom_val_data", lambda patch, progress=None: val)
    with pytest.raises(FinetuneError, match="mix in the phantom"):
        build_finetune_data(library, PATCH)
    data = build_finetune_data(library, PATCH, with_phantoms=True)
    d = data.description
    assert d["val_studies"] == ["phantom validation split"] and d["val_nodules"] == 10
    # 2 library nodules repeated to weigh about a tenth of 40 phantom nodules: twice.
    assert d["library_repeats"] == 2 and len(data.train.labels) == 2 * 2 + 40
    assert "phantom validation split held out" in describe(d)
