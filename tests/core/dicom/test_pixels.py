"""Stored values -> HU for every pixel format the fast and slow paths meet."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.dicom.pixels import allocate_ahead, allocate_volume, prefetch, stored_to_hu
from core.dicom.slice_header import SliceHeader

BASE = SliceHeader(
    path=Path("x.dcm"), sop_uid="", series_uid="", study_uid="", modality="CT", rows=1, columns=6,
    n_frames=1, instance_number=1, position=None, orientation=None, pixel_spacing=None,
    slice_thickness=None, bits_allocated=16, bits_stored=16, pixel_representation=1,
    samples_per_pixel=1, slope=1.0, intercept=-1024.0, padding_value=None,
    transfer_syntax="1.2.840.10008.1.2.1", pixel_offset=None, pixel_bytes=None,
)  # fmt: skip


def convert(values, dtype, **changes) -> list[int]:
    raw = np.array([values], dtype=dtype)
    out = np.empty(raw.shape, np.int16)
    stored_to_hu(raw, replace(BASE, **changes), out)
    return out[0].tolist()


def test_signed_16_bit_with_intercept_clamps_below_air_without_overflow():
    assert convert([-32768, -2000, 0, 1024, 1064, 32767], np.int16) == [-1024, -1024, -1024, 0, 40, 31743]


def test_unsigned_12_bit_masks_overlay_bits():
    stored = [0, 1024, 1064, 0xF000 | 1064, 4095, 24]
    assert convert(stored, np.uint16, pixel_representation=0, bits_stored=12) == [
        -1024, 0, 40, 40, 3071, -1000,
    ]  # fmt: skip


def test_signed_12_bit_is_sign_extended():
    # 0x0FFF is -1 in 12-bit two's complement; 0x0800 is -2048.
    out = convert([0x0FFF, 0x0800, 0x07FF, 0, 5, 1], np.int16, bits_stored=12, intercept=0.0)
    assert out == [-1, -1024, 2047, 0, 5, 1]


def test_unsigned_16_bit_full_range_takes_the_exact_path():
    out = convert([0, 32768, 65535, 40000, 1, 2], np.uint16, pixel_representation=0, intercept=-32768.0)
    assert out == [-1024, 0, 32767, 7232, -1024, -1024]


def test_fractional_slope_and_padding():
    out = convert([0, 100, 2000, 4000, 3000, 30], np.int16, slope=0.5, intercept=-1000.0, padding_value=4000)
    assert out == [-1000, -950, 0, -1024, 500, -985]


@pytest.mark.parametrize("in_place", [True, False])
def test_in_place_and_copy_give_the_same_result(in_place):
    raw = np.array([[0, 1024, 2048]], dtype=np.int16)
    out = raw if in_place else np.empty_like(raw)
    stored_to_hu(raw, BASE, out)
    assert out.tolist() == [[-1024, 0, 1024]]


@pytest.mark.parametrize(
    "dtype, representation, bits, intercept",
    [
        (np.uint16, 0, 12, -1024.0),  # the common CT: no clamp needed at all
        (np.uint16, 0, 15, -1024.0),
        (np.int16, 1, 16, -1024.0),  # below air reachable: the lower clamp
        (np.int16, 1, 16, 1000.0),  # int16 overflow reachable: the upper clamp
        (np.int16, 1, 12, 0.0),
        (np.uint16, 0, 12, 31000.0),
        (np.int16, 1, 16, -32768.0),
    ],
)
def test_integer_path_matches_the_exact_formula(dtype, representation, bits, intercept):
    rng = np.random.default_rng(bits)
    info = np.iinfo(dtype)
    raw = rng.integers(info.min, int(info.max) + 1, (4, 64)).astype(dtype)
    raw[0, :4] = [info.min, info.max, 0, 1]
    header = replace(BASE, pixel_representation=representation, bits_stored=bits, intercept=intercept)
    out = np.empty(raw.shape, np.int16)
    stored_to_hu(raw.copy(), header, out)
    stored = raw.astype(np.int64)
    if representation == 0:
        stored &= (1 << bits) - 1
    elif bits < 16:
        stored = (stored << (64 - bits)) >> (64 - bits)
    expected = np.clip(stored + int(intercept), -1024, 32767)
    assert out.tolist() == expected.tolist()


def test_volume_allocated_ahead_is_given_when_the_shape_agrees():
    shape = (20, 512, 512)  # over the small-array limit: the mapped, pre-faulted memory
    volume = allocate_volume(shape)
    assert volume.shape == shape and volume.dtype == np.int16 and volume.flags.writeable
    assert not volume[::7, ::61, ::67].any()
    take = allocate_ahead(shape)
    assert take(shape).shape == shape
    take = allocate_ahead(shape)
    assert take((19, 512, 512)).shape == (19, 512, 512)  # duplicates dropped: a fresh one


def test_prefetch_ignores_files_it_cannot_open(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10)
    prefetch([tmp_path / "a", tmp_path / "missing"])  # the loader reports missing files, not this
