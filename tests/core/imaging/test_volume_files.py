from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from core.dicom.errors import ImageFormatError
from core.imaging.volume_files import load_volume_file


@pytest.mark.parametrize("suffix", ["nii.gz", "mha", "nrrd"])
def test_volume_files_load_with_lps_geometry(tmp_path, suffix):
    array = (np.arange(4 * 5 * 6).reshape(4, 5, 6) * 10 - 1000).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((10.0, 20.0, 30.0))
    image.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    path = tmp_path / f"ct.{suffix}"
    sitk.WriteImage(image, str(path))
    volume = load_volume_file(path)
    assert np.array_equal(volume.array, array)
    assert volume.spacing == pytest.approx((0.7, 0.8, 2.5))
    assert volume.origin == pytest.approx((10.0, 20.0, 30.0))
    # Voxel (x=1, 0, 0) lies one x-spacing along ITK's first direction column (here +y in LPS).
    expected = image.TransformIndexToPhysicalPoint((1, 0, 0))
    assert volume.voxel_to_mm([1, 0, 0]) == pytest.approx(expected)


def test_nifti_ras_is_converted_to_lps_once(tmp_path):
    image = sitk.GetImageFromArray(np.zeros((2, 2, 2), np.int16))
    image.SetOrigin((5.0, 6.0, 7.0))  # ITK's LPS; NIfTI stores (-5, -6, 7) in RAS
    path = tmp_path / "ct.nii"
    sitk.WriteImage(image, str(path))
    assert load_volume_file(path).origin == pytest.approx((5.0, 6.0, 7.0))
    import struct

    header = path.read_bytes()
    qoffset = struct.unpack("<3f", header[268:280])
    assert qoffset == pytest.approx((-5.0, -6.0, 7.0))


def test_bad_files_raise_clear_errors(tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not really gzip")
    with pytest.raises(ImageFormatError, match=r"broken\.nii\.gz: SimpleITK cannot read it"):
        load_volume_file(broken)
    flat = tmp_path / "flat.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4), np.int16)), str(flat))
    with pytest.raises(ImageFormatError, match="2D image"):
        load_volume_file(flat)
    with pytest.raises(ImageFormatError, match="no such file"):
        load_volume_file(tmp_path / "missing.nrrd")


def test_float_volume_is_rounded_and_flagged(tmp_path):
    path = tmp_path / "float.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((2, 3, 3), 10.4, np.float32)), str(path))
    volume = load_volume_file(path)
    assert volume.array.dtype == np.int16 and int(volume.array[0, 0, 0]) == 10
    assert any("rounded" in w for w in volume.warnings)
