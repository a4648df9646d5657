"""The loader on generated series: every defect it promises to handle, and the errors it raises."""

from __future__ import annotations

import os
import stat

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from core.dicom.errors import InconsistentSeriesError, NotCTError, NotDicomError, PixelDecodeError
from core.dicom.series import LoadCancelled, load_series
from tests.dicom_factory import ct_dataset, phantom_slice, write_series


def centre_values(volume) -> list[int]:
    return [int(v) for v in volume.array[:, 16, 16]]


def test_shuffled_names_are_ordered_by_position(tmp_path):
    files = write_series(tmp_path, 6)
    volume = load_series(files)
    assert volume.shape == (6, 32, 32)
    assert centre_values(volume) == [0, 10, 20, 30, 40, 50]
    assert volume.spacing == pytest.approx((0.8, 0.7, 2.5))  # (x=column, y=row) from PixelSpacing
    assert volume.origin == pytest.approx((-10.0, -12.0, 0.0))
    assert volume.array.dtype == np.int16
    assert volume.warnings == ()
    assert not volume.array.flags.writeable


def test_order_follows_the_normal_not_instance_number(tmp_path):
    files = write_series(tmp_path, 5)
    for path in files:  # scramble InstanceNumber: the loader must not trust it
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = 100 - int(ds.InstanceNumber) * 7 % 13
        ds.save_as(path)
    assert centre_values(load_series(files)) == [0, 10, 20, 30, 40]


def test_feet_first_descending_positions_still_ascend_along_normal(tmp_path):
    files = write_series(tmp_path, 4, orientation=(1.0, 0.0, 0.0, 0.0, -1.0, 0.0))
    volume = load_series(files)  # normal = row x col = -z: slices ascend along -z
    assert centre_values(volume) == [30, 20, 10, 0]
    assert volume.direction[:, 2] == pytest.approx([0, 0, -1])


def test_missing_slice_is_flagged_as_a_gap(tmp_path):
    files = write_series(tmp_path, 7, shuffle_names=False)
    files[3].unlink()
    volume = load_series([f for f in files if f.exists()])
    assert volume.shape[0] == 6
    assert any("gap" in w and "1 missing" in w for w in volume.warnings)


def test_resample_fills_the_gap_on_a_regular_grid(tmp_path):
    files = write_series(tmp_path, 7, shuffle_names=False)
    files[3].unlink()
    volume = load_series([f for f in files if f.exists()], resample=True)
    assert volume.shape[0] == 7
    assert centre_values(volume) == [0, 10, 20, 30, 40, 50, 60]  # the missing 30 interpolated
    assert any("resampled" in w for w in volume.warnings)


def test_duplicate_slice_is_dropped_and_flagged(tmp_path):
    files = write_series(tmp_path, 5)
    ds = pydicom.dcmread(files[0])
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "copy.dcm")
    volume = load_series([*files, tmp_path / "copy.dcm"])
    assert volume.shape[0] == 5
    assert any("duplicate" in w for w in volume.warnings)


def test_non_uniform_spacing_is_flagged(tmp_path):
    series, study = generate_uid(), generate_uid()
    for k, z in enumerate([0.0, 1.0, 2.0, 3.4, 4.4]):
        ct_dataset(k, series, study, z=z).save_as(tmp_path / f"s{k}.dcm", enforce_file_format=True)
    volume = load_series(sorted(tmp_path.iterdir()))
    assert any("non-uniform" in w for w in volume.warnings)


def _tilted_rod_series(folder, tilt_deg=15.0, dz=2.0, n=8):
    """A vertical rod (x = y = 0, radius 3 mm) imaged on planes tilted about the x axis."""
    series, study = generate_uid(), generate_uid()
    t = np.radians(tilt_deg)
    row, col = np.array([1.0, 0, 0]), np.array([0.0, np.cos(t), -np.sin(t)])
    j, i = np.mgrid[0:32, 0:32].astype(np.float64)
    for k in range(n):
        ipp = np.array([-16.0, -16.0, k * dz])  # the table moves along z, not along the normal
        points = ipp + i[..., None] * row + j[..., None] * col
        hu = np.where(np.hypot(points[..., 0], points[..., 1]) < 3.0, 500, 0).astype(np.int16)
        ds = ct_dataset(
            k, series, study, position=tuple(ipp), orientation=(*row, *col), hu=hu, spacing=(1, 1)
        )
        ds.save_as(folder / f"t{k}.dcm", enforce_file_format=True)
    return sorted(folder.iterdir())


def _rod_offsets_mm(volume) -> list[float]:
    """Distance from the true rod axis of the bright centroid of each slice, through the affine."""
    out = []
    for k in range(volume.shape[0]):
        weight = np.clip(volume.array[k].astype(np.float64), 0, None)
        ys, xs = np.mgrid[0 : weight.shape[0], 0 : weight.shape[1]]
        centre = [(xs * weight).sum() / weight.sum(), (ys * weight).sum() / weight.sum(), k]
        lps = volume.voxel_to_mm(np.array(centre))
        out.append(float(np.hypot(lps[0], lps[1])))
    return out


def test_gantry_tilt_is_detected_and_corrected(tmp_path):
    files = _tilted_rod_series(tmp_path)
    corrected = load_series(files)
    assert any("gantry tilt of 15.0 degrees corrected" in w for w in corrected.warnings)
    assert max(_rod_offsets_mm(corrected)) < 0.5  # every slice puts the rod where it truly is
    raw = load_series(files, correct_tilt=False)
    assert any("not corrected" in w for w in raw.warnings)
    assert max(_rod_offsets_mm(raw)) > 3.0  # uncorrected, the far slices misplace it by mm


def test_mixed_sizes_raise_an_error_naming_files(tmp_path):
    series, study = generate_uid(), generate_uid()
    files = write_series(tmp_path, 3, series_uid=series, study_uid=study)
    big = ct_dataset(9, series, study, z=30.0, hu=phantom_slice(9, 48, 48))
    big.save_as(tmp_path / "big-one.dcm", enforce_file_format=True)
    with pytest.raises(InconsistentSeriesError, match=r"rows x columns.*48x48.*big-one\.dcm"):
        load_series([*files, tmp_path / "big-one.dcm"])


def test_two_series_in_one_list_are_refused(tmp_path):
    a = write_series(tmp_path / "a", 3)
    b = write_series(tmp_path / "b", 3)
    with pytest.raises(InconsistentSeriesError, match="2 different series"):
        load_series(a + b)


def test_non_dicom_file_raises_not_dicom(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not DICOM at all, just words " * 20)
    with pytest.raises(NotDicomError, match=r"notes\.txt: not a DICOM file"):
        load_series([path])


def test_truncated_pixel_data_raises_pixel_decode_error(tmp_path):
    files = write_series(tmp_path, 3)
    data = files[1].read_bytes()
    files[1].write_bytes(data[:-500])
    with pytest.raises(PixelDecodeError, match=files[1].name):
        load_series(files)


def test_truncated_header_raises_not_dicom(tmp_path):
    files = write_series(tmp_path, 2)
    files[0].write_bytes(files[0].read_bytes()[:200])
    with pytest.raises((NotDicomError, PixelDecodeError), match=files[0].name):
        load_series(files)


def test_non_ct_modality_is_refused_unless_allowed(tmp_path):
    files = write_series(tmp_path, 2)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.Modality = "MR"
        ds.save_as(path)
    with pytest.raises(NotCTError, match="modality MR"):
        load_series(files)
    assert load_series(files, require_ct=False).shape[0] == 2


def test_rescale_slope_padding_and_unsigned_12_bit(tmp_path):
    series, study = generate_uid(), generate_uid()
    hu = phantom_slice(3)
    ds = ct_dataset(0, series, study, hu=hu, intercept=-1024, slope=1.0)
    stored = (hu.astype(np.int32) + 1024).astype(np.uint16)
    stored[0, 0] = 0xF000 | stored[0, 0]  # overlay bit above BitsStored: must be masked
    stored[-1, -1] = 4000  # marked as padding below
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
    ds.PixelPaddingValue = 4000
    ds.PixelData = stored.tobytes()
    ds.save_as(tmp_path / "a.dcm", enforce_file_format=True)
    half = ct_dataset(1, series, study, hu=hu, intercept=-1000.0, slope=0.5)
    half.save_as(tmp_path / "b.dcm", enforce_file_format=True)
    volume = load_series([tmp_path / "a.dcm", tmp_path / "b.dcm"])
    assert volume.array[0, 16, 16] == 30 and volume.array[0, 0, 0] == -1000
    assert volume.array[0, -1, -1] == -1024  # padding -> air
    assert volume.array[1, 16, 16] == 30  # slope 0.5 applied


def test_values_below_air_are_clamped(tmp_path):
    hu = phantom_slice(1)
    hu[:4] = -3024  # outside the reconstruction circle
    files = write_series(tmp_path, 1, hu=hu)
    assert load_series(files).array.min() == -1024


def test_progress_and_cancel(tmp_path):
    files = write_series(tmp_path, 5)
    seen = []
    load_series(files, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (5, 5)
    with pytest.raises(LoadCancelled):
        load_series(files, cancelled=lambda: True)


def test_unicode_path_and_read_only_folder(tmp_path):
    folder = tmp_path / "Études — 患者"
    files = write_series(folder, 3)
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
    try:
        volume = load_series(files)
    finally:
        os.chmod(folder, stat.S_IRWXU)
    assert volume.shape[0] == 3
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in files)  # nothing written


def test_enhanced_multiframe_uses_per_frame_positions(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = ct_dataset(0, generate_uid(), generate_uid())
    del (
        ds.ImagePositionPatient,
        ds.ImageOrientationPatient,
        ds.RescaleIntercept,
        ds.RescaleSlope,
        ds.PixelSpacing,
    )
    frames = np.stack([phantom_slice(k) + 1024 for k in (2, 0, 1)])  # stored out of order
    ds.NumberOfFrames = 3
    ds.PixelData = frames.astype(np.int16).tobytes()

    def item(**kw):
        out = Dataset()
        for key, value in kw.items():
            setattr(out, key, value)
        return out

    shared = item(
        PlaneOrientationSequence=Sequence([item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])]),
        PixelMeasuresSequence=Sequence([item(PixelSpacing=[0.5, 0.5], SliceThickness=1.0)]),
        PixelValueTransformationSequence=Sequence(
            [item(RescaleIntercept=-1024, RescaleSlope=1, RescaleType="HU")]
        ),
    )
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.PerFrameFunctionalGroupsSequence = Sequence(
        [
            item(PlanePositionSequence=Sequence([item(ImagePositionPatient=[0, 0, z])]))
            for z in (2.0, 0.0, 1.0)
        ]
    )
    path = tmp_path / "enhanced.dcm"
    ds.save_as(path, enforce_file_format=True)
    volume = load_series([path])
    assert centre_values(volume) == [0, 10, 20]
    assert volume.spacing == pytest.approx((0.5, 0.5, 1.0))


@pytest.fixture
def allocations(monkeypatch):
    """The volume shapes the loader allocates; a test fails on one larger than its files hold."""
    import core.dicom.pixels as pixels
    import core.dicom.series as series

    asked, real = [], pixels.allocate_volume

    def guarded(shape):
        asked.append(shape)
        held = sum(os.path.getsize(p) for p in allocations.files)
        assert int(np.prod(shape)) * 2 <= held, f"allocated {shape} for {held} bytes of files"
        return real(shape)

    allocations = type("Allocations", (), {"asked": asked, "files": []})
    for module in (pixels, series):
        monkeypatch.setattr(module, "allocate_volume", guarded)
    return allocations


def _huge(ds, bits: int = 16):
    ds.Rows = ds.Columns = 65535  # the pixel data stays 32x32
    if bits == 8:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    return ds


def _write(folder, n: int, change, size: int = 32) -> list:
    series, study, paths = generate_uid(), generate_uid(), []
    for k in range(n):
        ds = change(ct_dataset(k, series, study, hu=phantom_slice(k, size, size)))
        paths.append(folder / f"{k:03d}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def _truncate(paths, keep: int = 4096) -> None:
    for path in paths:
        path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize(
    "case, reason",
    [
        ("65535x65535, 16-bit", "65535x65535 pixels per slice, over the 8192 limit"),
        ("65535x65535, 8-bit (decoder path)", "65535x65535 pixels per slice, over the 8192 limit"),
        ("1024x1024, file cut after 4 KB", "pixel data too short for 1024x1024"),
    ],
)
def test_sizes_the_files_cannot_hold_are_refused_before_allocating(tmp_path, allocations, case, reason):
    if case.startswith("65535"):
        files = _write(tmp_path, 10, lambda ds: _huge(ds, 8 if "8-bit" in case else 16))
    else:
        files = _write(tmp_path, 3, lambda ds: ds, size=1024)
        _truncate(files)
    allocations.files = files
    with pytest.raises(PixelDecodeError) as caught:
        load_series(files)
    message = str(caught.value)
    assert caught.value.path in files and message.startswith(str(caught.value.path)), message
    assert reason in message and "\n" not in message
    assert allocations.asked == []


def test_resampling_to_a_far_off_slice_is_refused_before_allocating(tmp_path, monkeypatch):
    import core.dicom.pixels as pixels

    monkeypatch.setattr(pixels, "MAX_VOLUME_BYTES", 2**20, raising=False)  # 512 slices of 32x32
    files = write_series(tmp_path, 4, shuffle_names=False)
    first = pydicom.dcmread(files[0])
    far = ct_dataset(4, first.SeriesInstanceUID, first.StudyInstanceUID, z=2000.0)
    far.save_as(tmp_path / "far.dcm", enforce_file_format=True)
    files.append(tmp_path / "far.dcm")
    assert load_series(files).shape[0] == 5  # not resampled: nothing to allocate
    with pytest.raises(PixelDecodeError, match=r"801 slices would need .* GiB, over the 0 GiB limit"):
        load_series(files, resample=True)
