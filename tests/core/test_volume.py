from __future__ import annotations

import numpy as np
import pytest

from core.volume import CTVolume, VolumeMetadata


def make(shape=(3, 4, 5), spacing=(0.5, 0.6, 2.0), origin=(10.0, -5.0, 100.0)):
    affine = np.eye(4)
    affine[:3, :3] = np.diag(spacing)
    affine[:3, 3] = origin
    return CTVolume(np.zeros(shape, np.int16), affine, VolumeMetadata(patient_name="Doe^Jane"))


def test_derived_geometry_and_round_trip():
    volume = make()
    assert volume.spacing == pytest.approx((0.5, 0.6, 2.0))
    assert volume.origin == pytest.approx((10.0, -5.0, 100.0))
    point = volume.voxel_to_mm([4, 3, 2])
    assert point == pytest.approx([12.0, -3.2, 104.0])
    assert volume.mm_to_voxel(point) == pytest.approx([4, 3, 2])
    assert volume.contains_mm(point) and not volume.contains_mm([0.0, 0.0, 0.0])
    assert volume.ras_affine[0, 3] == pytest.approx(-10.0)


def test_is_immutable_and_validated():
    volume = make()
    with pytest.raises(ValueError):
        volume.array[0, 0, 0] = 1
    with pytest.raises(ValueError, match="int16"):
        CTVolume(np.zeros((2, 2, 2), np.float32), np.eye(4))
    with pytest.raises(ValueError, match="3D"):
        CTVolume(np.zeros((2, 2), np.int16), np.eye(4))
    with pytest.raises(ValueError, match="singular"):
        CTVolume(np.zeros((2, 2, 2), np.int16), np.diag([1.0, 0.0, 1.0, 1.0]))


def test_repr_shows_shape_spacing_memory_and_no_patient_data():
    text = repr(make())
    assert "z=3" in text and "MiB" in text and "Doe" not in text


def test_anonymised_metadata_drops_identifiers():
    meta = VolumeMetadata(patient_name="Doe^Jane", patient_id="42", study_uid="1.2")
    anonymous = meta.anonymised()
    assert anonymous.patient_name == "" and anonymous.patient_id == "" and anonymous.study_uid == "1.2"
