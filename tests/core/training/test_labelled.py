"""Datasets from labelled markers: the Predictor's patches, the paper's labels, masked missing ratings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import core.model.inference
from core.model.checkpoints import save_checkpoint
from core.model.inference import Predictor
from core.model.patches import PatchConfig
from core.nodule.labels import LabelledNodule, NoduleLabel
from core.nodule.prediction import Marker
from core.training.labelled import concatenate, dataset_from_labels
from core.volume import CTVolume, VolumeMetadata
from models.losses import attribute_loss
from models.mtmr import ATTRIBUTE_NAMES, MTMRNet, MTMRNetConfig
from tests.core.training.fake_data import fake_dataset

PATCH = PatchConfig(size=32, max_slices=3)
SERIES = "1.2.826.0.1.3680043.8.498.1"


def sphere_volume(radius_mm: float = 5.0, series_uid: str = SERIES) -> CTVolume:
    """A bright sphere centred at (0, 0, 0) mm in a 0.7 x 0.7 x 1 mm volume."""
    shape, spacing = (40, 80, 80), np.array([0.7, 0.7, 1.0])
    z, y, x = np.indices(shape).astype(np.float64)
    centre = np.array(shape) / 2
    distance = np.sqrt(
        ((x - centre[2]) * spacing[0]) ** 2
        + ((y - centre[1]) * spacing[1]) ** 2
        + ((z - centre[0]) * spacing[2]) ** 2
    )
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -centre[::-1] * spacing
    hu = np.where(distance <= radius_mm, 40, -850).astype(np.int16)
    return CTVolume(hu, affine, VolumeMetadata(series_uid=series_uid, study_uid="1.2.3"))


def nodule(marker_id: str, malignancy, centre=(0.0, 0.0, 0.0), diameter=10.0, series=SERIES, **attributes):
    label = NoduleLabel(malignancy=malignancy, attributes=attributes)
    return LabelledNodule(marker_id, centre, diameter, label, study_uid="1.2.3", series_uid=series)


NODULES = [
    nodule("m1", 4.5, spiculation=5, calcification=6, internal_structure=1),
    nodule("m2", 1.0, centre=(8.0, -5.0, 2.0), diameter=6.0, subtlety=3),
    nodule("m3", 3.0, centre=(-6.0, 4.0, -3.0), diameter=4.0),
    nodule("m4", None, centre=(2.0, 2.0, 0.0), diameter=12.0, texture=5),
]


@pytest.fixture
def predictor(tmp_path) -> Predictor:
    torch.manual_seed(0)
    card = {"name": "tiny", "preprocessing": PATCH.to_dict()}
    save_checkpoint(
        tmp_path / "m.safetensors", MTMRNet(MTMRNetConfig(depth=18, width=8, input_size=32)), card
    )
    return Predictor(tmp_path / "m.safetensors", device="cpu")


def test_patches_are_those_the_predictor_cuts(predictor, monkeypatch):
    volume = sphere_volume()
    seen = []

    def recording(*args, **kwargs):
        seen.append(extract(*args, **kwargs))
        return seen[-1]

    extract = core.model.inference.extract_patches
    monkeypatch.setattr(core.model.inference, "extract_patches", recording)
    predictor.predict(volume, [Marker(n.marker_id, n.centre_mm, n.diameter_mm) for n in NODULES])
    data = dataset_from_labels(volume, NODULES, predictor.patch_config)
    assert data.patches.shape == (sum(len(s) for s in seen), 1, 32, 32) and data.patches.dtype == np.float16
    for n, stack in enumerate(seen):
        rows = data.nodule_index == n
        assert rows.sum() == len(stack) and (data.variant[rows] == 0).all()
        np.testing.assert_allclose(data.patches[rows].astype(np.float32), stack, atol=1e-3)
    np.testing.assert_allclose(data.diameters, [10, 6, 4, 12])


def test_jittered_variants_follow_the_clean_view_and_the_seed():
    volume = sphere_volume()
    clean = dataset_from_labels(volume, NODULES[:2], PATCH)
    data = dataset_from_labels(volume, NODULES[:2], PATCH, variants=2, seed=4)
    assert len(data.patches) == 3 * len(clean.patches)
    assert sorted(set(data.variant.tolist())) == [0, 1, 2]
    np.testing.assert_array_equal(data.patches[data.variant == 0], clean.patches)
    assert not np.array_equal(data.patches[data.variant == 1], clean.patches)
    again = dataset_from_labels(volume, NODULES[:2], PATCH, variants=2, seed=4)
    np.testing.assert_array_equal(again.patches, data.patches)
    other = dataset_from_labels(volume, NODULES[:2], PATCH, variants=2, seed=5)
    assert not np.array_equal(other.patches, data.patches)


def test_labels_follow_the_paper_and_missing_ratings_are_nan():
    data = dataset_from_labels(sphere_volume(), NODULES, PATCH)
    assert data.labels.tolist() == [1, 0, -1, -1]  # > 3, < 3, exactly 3, not rated
    spiculation, calcification = ATTRIBUTE_NAMES.index("spiculation"), ATTRIBUTE_NAMES.index("calcification")
    structure, subtlety = ATTRIBUTE_NAMES.index("internal_structure"), ATTRIBUTE_NAMES.index("subtlety")
    assert data.attributes[0, spiculation] == 1.0 and data.attributes[0, calcification] == 1.0
    assert data.attributes[0, structure] == 0.0
    assert data.attributes[1, subtlety] == pytest.approx(0.5)
    assert np.isnan(data.attributes[2]).all()
    assert np.isnan(data.attributes[0]).sum() == 5 and np.isnan(data.attributes[3]).sum() == 7
    assert data.patient_ids.tolist() == [SERIES] * 4
    assert data.nodule_ids.tolist() == [f"{SERIES}/m{i}" for i in range(1, 5)]
    named = dataset_from_labels(sphere_volume(), NODULES[:1], PATCH, patient_id="study-7")
    assert named.patient_ids.tolist() == ["study-7"] and named.nodule_ids.tolist() == ["study-7/m1"]


def test_a_missing_rating_trains_nothing_value_by_value():
    data = dataset_from_labels(sphere_volume(), NODULES[:2], PATCH)
    target = torch.from_numpy(data.attributes)
    predicted = torch.full_like(target, 0.3, requires_grad=True)
    loss = attribute_loss(predicted, target, ())
    loss.backward()
    known = ~torch.isnan(target)
    assert torch.isfinite(loss)
    assert (predicted.grad[~known] == 0).all() and (predicted.grad[known] != 0).all()
    # the loss is the mean over the known values only: changing a masked prediction changes nothing
    moved = predicted.detach().clone()
    moved[~known] = 0.9
    assert attribute_loss(moved, target, ()).item() == pytest.approx(loss.item())
    # per attribute, the mean over the nodules that rated it: (0.3 - 1)^2 for spiculation and
    # calcification (nodule 0), (0.3 - 0)^2 internal structure (nodule 0), (0.3 - 0.5)^2 subtlety (nodule 1)
    assert loss.item() == pytest.approx(0.49 + 0.49 + 0.09 + 0.04)


def test_concatenate_offsets_the_nodule_index():
    volume = sphere_volume()
    first = dataset_from_labels(volume, NODULES[:2], PATCH, patient_id="a")
    second = dataset_from_labels(volume, NODULES[2:], PATCH, patient_id="b", variants=1)
    phantom = fake_dataset(nodules=4)
    mixed = concatenate([first, second, phantom])
    assert len(mixed.labels) == 8 and len(mixed.patches) == len(first.patches) + len(second.patches) + 12
    np.testing.assert_array_equal(mixed.labels, np.concatenate([first.labels, second.labels, phantom.labels]))
    start = len(first.patches)
    np.testing.assert_array_equal(mixed.nodule_index[:start], first.nodule_index)
    np.testing.assert_array_equal(
        mixed.nodule_index[start : start + len(second.patches)], second.nodule_index + 2
    )
    np.testing.assert_array_equal(mixed.nodule_index[-12:], phantom.nodule_index + 4)
    np.testing.assert_array_equal(mixed.slice_labels[-12:], phantom.slice_labels)
    assert mixed.patient_ids.tolist()[:4] == ["a", "a", "b", "b"]
    assert mixed.patches.dtype == np.float16 and mixed.nodule_index.dtype == np.int32
    with pytest.raises(ValueError, match="patch shapes"):
        concatenate([first, dataset_from_labels(volume, NODULES[:1], PatchConfig(size=16))])
    with pytest.raises(ValueError, match="nothing"):
        concatenate([])


def test_empty_study_gives_an_empty_dataset_that_concatenates():
    empty = dataset_from_labels(sphere_volume(), [], PATCH)
    assert empty.patches.shape == (0, 1, 32, 32) and empty.attributes.shape == (0, 8)
    mixed = concatenate([empty, fake_dataset(nodules=2)])
    assert len(mixed.labels) == 2 and mixed.nodule_index.tolist() == [0, 0, 0, 1, 1, 1]


def test_markers_outside_the_volume_or_on_another_series_are_refused_by_name():
    volume = sphere_volume()
    with pytest.raises(ValueError, match=r"marker far: .*outside the volume"):
        dataset_from_labels(volume, [NODULES[0], nodule("far", 4, centre=(900.0, 0.0, 0.0))], PATCH)
    with pytest.raises(ValueError, match=r"marker elsewhere: .*series 9\.9"):
        dataset_from_labels(volume, [nodule("elsewhere", 4, series="9.9")], PATCH)
    with pytest.raises(ValueError, match="variants"):
        dataset_from_labels(volume, NODULES, PATCH, variants=-1)
