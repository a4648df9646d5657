"""Out-of-distribution reasons: each one found, none for a nodule the model was trained for."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.model.inference import Predictor
from core.model.ood import NOMINAL_DOMAIN, card_domain, marker_warnings, series_warnings
from core.nodule.prediction import Marker
from core.volume import CTVolume, VolumeMetadata
from tests.core.model.test_patches import sphere_volume
from tests.core.model.test_uncertainty import tiny_checkpoint

RANDOMISED = {"slice_thickness_mm": [0.625, 5.0], "pixel_spacing_mm": [0.5, 1.0], "kernels": ["soft"]}


def scan(thickness=1.25, pixels=0.7, **meta) -> CTVolume:
    volume = sphere_volume(5.0, spacing=(pixels, pixels, thickness), shape=(40, 64, 64))
    return CTVolume(volume.array, volume.affine, VolumeMetadata(**({"modality": "CT"} | meta)))


def test_a_nominal_nodule_gets_no_warning():
    volume = scan(slice_thickness=1.25)
    assert series_warnings(volume, NOMINAL_DOMAIN) == []
    assert marker_warnings(volume, (0.0, 0.0, 0.0), 10.0) == []
    assert series_warnings(scan(1.0, 0.8), NOMINAL_DOMAIN) == []  # within the stated tolerance


@pytest.mark.parametrize(
    ("volume", "reason"),
    [
        (scan(2.5), "slice thickness 2.50 mm outside the model's 0.83-1.88 mm"),
        (scan(1.25, slice_thickness=3.0), "slice thickness 3.00 mm"),  # thick slices, overlapping
        (scan(1.25, 1.2), "pixel spacing 1.20 mm outside the model's 0.47-1.05 mm"),
        (scan(modality="MR"), "modality MR, not CT"),
        (scan(contrast_agent="OMNIPAQUE 350"), "contrast-enhanced series"),
    ],
)
def test_each_series_reason(volume, reason):
    warnings = series_warnings(volume, NOMINAL_DOMAIN)
    assert len(warnings) == 1 and reason in warnings[0]


def test_no_agent_written_as_none_is_not_contrast():
    for value in ("NONE", "None", " no ", ""):
        assert series_warnings(scan(contrast_agent=value), NOMINAL_DOMAIN) == []


def test_the_cards_domain_replaces_the_nominal_protocol():
    assert card_domain({}) is NOMINAL_DOMAIN and card_domain({"domain": RANDOMISED}) is RANDOMISED
    assert series_warnings(scan(5.0), RANDOMISED) == []  # trained on 0.625-5 mm
    assert "slice thickness 9.00 mm" in series_warnings(scan(9.0), RANDOMISED)[0]
    assert series_warnings(scan(5.0), {"slice_thickness_mm": "junk"}) == []  # unreadable: unchecked


def test_marker_on_air_or_bone():
    volume = scan()
    hu = volume.array.copy()
    hu[:, :, :20] = -1000  # air
    hu[:, :, 44:] = 1200  # bone
    volume = CTVolume(hu, volume.affine, volume.metadata)
    left = volume.voxel_to_mm(np.array([8.0, 32.0, 20.0]))
    right = volume.voxel_to_mm(np.array([56.0, 32.0, 20.0]))
    assert "marker on air" in marker_warnings(volume, left, 6.0)[0]
    assert "marker on bone" in marker_warnings(volume, right, 6.0)[0]
    assert marker_warnings(volume, (0.0, 0.0, 0.0), 10.0) == []


def test_predictor_attaches_the_reasons_to_each_nodule(tmp_path):
    predictor = Predictor(tiny_checkpoint(tmp_path / "m.safetensors", 1), device="cpu")
    markers = [Marker("a", (0.0, 0.0, 0.0), 10.0)]
    assert predictor.predict(scan(), markers)[0].warnings == ()
    thick = predictor.predict(scan(5.0), markers)[0]
    assert len(thick.warnings) == 1 and "slice thickness 5.00 mm" in thick.warnings[0]
    assert thick.warning_text.startswith("out of distribution: slice thickness")
    contrast = replace(scan().metadata, contrast_agent="IOPAMIDOL")
    result = predictor.predict(CTVolume(scan().array, scan().affine, contrast), markers)[0]
    assert "contrast-enhanced" in result.warnings[0]


def test_the_dicom_header_carries_the_contrast_agent():
    from pydicom.dataset import Dataset

    from core.dicom.series import metadata_from_dataset

    ds = Dataset()
    ds.Modality = "CT"
    ds.ContrastBolusAgent = "OMNIPAQUE "
    assert metadata_from_dataset(ds).contrast_agent == "OMNIPAQUE"
    del ds.ContrastBolusAgent
    assert metadata_from_dataset(ds).contrast_agent == ""
