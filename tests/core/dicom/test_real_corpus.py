"""The catalogue and loader over every file of pydicom's and pydicom-data's test corpora.

Nobody here wrote these files: CT slices from real scanners, JPEG 2000 / JPEG-LS / RLE / big-endian
encodings, malformed and truncated files. Each CT image must load with the HU that pydicom's own
modality LUT gives, or fail with a typed ``StudyLoadError``; nothing may crash.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut

from core.dicom.catalogue import catalogue
from core.dicom.errors import StudyLoadError
from core.dicom.headers import read_header
from core.dicom.series import load_series

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
data_store = pytest.importorskip("data_store", reason="pydicom-data is a test dependency")
PYDICOM_DATA_FILES = Path(data_store.__file__).parent / "data"
CORPUS = [PYDICOM_FILES, PYDICOM_DATA_FILES]


def corpus_files() -> list[Path]:
    return sorted(p for root in CORPUS for p in root.rglob("*") if p.is_file())


def by_name(name: str) -> Path:
    matches = [p for p in corpus_files() if p.name == name]
    assert matches, f"{name} missing from the test corpus"
    return matches[0]


def test_corpus_is_present_and_large():
    files = corpus_files()
    assert len(files) > 200
    assert {"693_UNCR.dcm", "693_J2KR.dcm", "693_J2KI.dcm", "eCT_Supplemental.dcm"} <= {f.name for f in files}


@pytest.mark.parametrize("root", CORPUS, ids=["pydicom", "pydicom-data"])
def test_catalogue_accounts_for_every_file(root):
    found = catalogue(root)
    in_series = sum(len(s.files) for s in found.all_series())
    all_files = [p for p in root.rglob("*") if p.is_file()]
    assert in_series + len(found.skipped) == len(all_files)
    assert all(s.reason for s in found.skipped)
    if root == PYDICOM_FILES:  # it also holds text, gzip and JSON files
        assert "not a DICOM file" in " ".join(s.reason for s in found.skipped)
    assert all(series.modality == "CT" or series.problems for series in found.all_series())


def ct_image_files() -> list[Path]:
    out = []
    for path in corpus_files():
        try:
            header = read_header(path)
        except StudyLoadError:
            continue
        if header.modality == "CT":
            out.append(path)
    return out


def reference_hu(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        hu = apply_modality_lut(ds.pixel_array, ds)
    return np.clip(np.rint(hu), -1024, 32767).astype(np.int16)


def test_every_ct_file_loads_with_pydicoms_hu_or_fails_typed():
    loaded, refused = 0, []
    for path in ct_image_files():
        try:
            volume = load_series([path])
        except StudyLoadError as exc:
            assert str(path.name) in str(exc)
            refused.append(path.name)
            continue
        loaded += 1
        expected = reference_hu(path)
        if expected.ndim == 2:
            expected = expected[None]
        if expected.shape[0] == 1:  # enhanced files keep their rescale in functional groups
            assert volume.shape == expected.shape, path.name
            assert np.array_equal(np.sort(volume.array, axis=None), np.sort(expected, axis=None)), path.name
    assert loaded >= 15, (loaded, refused)


def test_every_image_file_of_any_modality_fails_only_with_typed_errors():
    loaded = refused = 0
    for path in corpus_files():
        try:
            load_series([path], require_ct=False)
        except StudyLoadError as exc:
            assert path.name in str(exc) and exc.reason
            refused += 1
        else:
            loaded += 1
    assert loaded > 50 and refused > 50  # both paths really exercised


def test_known_hu_values_of_real_ct_slices():
    ct_small = load_series([by_name("CT_small.dcm")])
    assert ct_small.shape == (1, 128, 128)
    assert ct_small.spacing[:2] == pytest.approx((0.661468, 0.661468))
    uncr = load_series([by_name("693_UNCR.dcm")])
    raw = pydicom.dcmread(by_name("693_UNCR.dcm")).pixel_array
    assert uncr.array[0, 256, 256] == max(int(raw[256, 256]) - 1024, -1024)
    assert uncr.array.min() == -1024  # air (and the area outside the circle)
    assert 1000 < uncr.array.max() < 3000  # bone


def test_jpeg2000_lossless_matches_its_uncompressed_twin():
    uncompressed = load_series([by_name("693_UNCR.dcm")]).array
    j2k = load_series([by_name("693_J2KR.dcm")]).array
    assert np.array_equal(uncompressed, j2k)


def test_jpeg2000_lossy_decodes_to_its_twin_and_stays_close_to_the_original():
    original = load_series([by_name("693_UNCR.dcm")]).array.astype(np.int32)
    decoded_twin = load_series([by_name("693_UNCI.dcm")]).array.astype(np.int32)
    lossy = load_series([by_name("693_J2KI.dcm")]).array.astype(np.int32)
    assert np.array_equal(lossy, decoded_twin)  # UNCI is the J2KI image stored uncompressed
    assert not np.array_equal(lossy, original)
    assert np.corrcoef(lossy.ravel(), original.ravel())[0, 1] > 0.98
    assert np.mean(np.abs(lossy - original)) < 100


def test_enhanced_multiframe_ct_loads():
    path = by_name("eCT_Supplemental.dcm")
    volume = load_series([path])
    assert volume.shape == (2, 512, 512)
    assert volume.spacing[2] > 0
    stored = pydicom.dcmread(path).pixel_array
    # The rescale (-1024) lives in the functional groups, not at the top level.
    assert int(volume.array.max()) == int(stored.max()) - 1024


def test_dicomdir_folder_catalogues_its_ct_series():
    found = catalogue(PYDICOM_FILES / "dicomdirtests" / "DICOMDIR")
    ct = [s for s in found.all_series() if s.is_ct and s.rows == 16]
    assert ct and all(len(s.files) == s.n_images for s in ct)
    assert any("DICOMDIR" in s.reason for s in found.skipped)
