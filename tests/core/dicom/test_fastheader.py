"""The native header scanner must agree with pydicom on every file it accepts, and decline the rest."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from core.dicom.errors import StudyLoadError
from core.dicom.fastheader import scan_header
from core.dicom.headers import _read_with_pydicom
from tests.core.dicom.test_real_corpus import corpus_files
from tests.dicom_factory import write_series


def test_agrees_with_pydicom_on_every_corpus_file_it_accepts():
    accepted = declined = 0
    for path in corpus_files():
        fast = scan_header(path)
        try:
            reference = _read_with_pydicom(path)[0]
        except StudyLoadError:
            reference = None
        if fast is None:
            declined += 1
            continue
        accepted += 1
        assert reference is not None, path.name
        assert fast == reference, path.name
    assert accepted >= 40 and declined >= 100  # both paths exercised by real files


@pytest.mark.parametrize("implicit", [False, True])
def test_skips_nested_undefined_length_sequences(tmp_path, implicit):
    (path,) = write_series(tmp_path, 1)
    ds = pydicom.dcmread(path)
    inner = Dataset()
    inner.CodeValue, inner.CodeMeaning = "123", "nested"
    outer = Dataset()
    outer.ReferencedSOPInstanceUID = "1.2.3"
    outer.ConceptNameCodeSequence = Sequence([inner])
    ds.ReferencedImageSequence = Sequence([outer, outer])
    if implicit:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)  # pydicom writes undefined-length sequences
    fast = scan_header(path)
    assert fast is not None and fast == _read_with_pydicom(path)[0]
    assert fast.position == pytest.approx((-10.0, -12.0, 0.0))


def test_declines_what_it_does_not_handle(tmp_path):
    by_name = {p.name: p for p in corpus_files()}
    for name in ("MR_small_bigendian.dcm", "693_J2KR.dcm", "eCT_Supplemental.dcm", "DICOMDIR"):
        assert scan_header(by_name[name]) is None, name
    (path,) = write_series(tmp_path, 1)
    path.write_bytes(path.read_bytes()[:300])
    assert scan_header(path) is None
    (tmp_path / "text.dcm").write_text("hello")
    assert scan_header(tmp_path / "text.dcm") is None
