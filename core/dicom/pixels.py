"""Pixel work for the loader: raw reads, stored values -> HU, tilt shear, z resampling.

Everything works one slice at a time into the preallocated int16 volume, so the peak memory of a
load stays close to the volume itself.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
from collections.abc import Callable, Sequence

import numpy as np

from core.dicom.errors import PixelDecodeError
from core.dicom.slice_header import SliceHeader

AIR_HU = -1024
INT16_MAX = np.iinfo(np.int16).max
MAX_SIDE = 8192  # pixels along a slice's side: CT matrices are 512 to 2048
MAX_VOLUME_BYTES = 8 * 2**30
_MADV_POPULATE_READ, _MADV_POPULATE_WRITE = 22, 23  # Linux 5.14+
_POPULATE_CHUNK = 2**20  # a window thread waits at most ~1 ms for the lock
_LIBC = ctypes.CDLL(None) if hasattr(mmap, "MAP_POPULATE") else None  # Linux only


def check_sizes(headers: Sequence[SliceHeader], count: int) -> None:
    """Refuse, before anything is allocated, a volume its files cannot fill or no CT needs.

    A corrupt header (Rows = Columns = 65535, say) would otherwise have the loader allocate
    gigabytes before the first read finds the pixel data missing. ``headers`` agree on the size.
    """
    first = headers[0]
    rows, columns = first.rows, first.columns
    if not (0 < rows <= MAX_SIDE and 0 < columns <= MAX_SIDE):
        raise PixelDecodeError(
            first.path, f"{rows}x{columns} pixels per slice, over the {MAX_SIDE} limit (corrupt header?)"
        )
    check_volume_bytes(first, count)
    need = rows * columns * 2
    for header in headers:
        if not header.fast_path:
            continue  # compressed or unusual: the decoder reads the actual data, the caps above hold
        try:
            present = min(header.pixel_bytes, os.path.getsize(header.path) - header.pixel_offset)
        except OSError as exc:
            raise PixelDecodeError(header.path, f"cannot read pixel data ({exc.__class__.__name__})") from exc
        if present < need:
            raise PixelDecodeError(
                header.path,
                f"pixel data too short for {rows}x{columns}: {max(present, 0)} of {need} bytes present",
            )


def check_volume_bytes(header: SliceHeader, count: int) -> None:
    """Refuse a volume of ``count`` slices the size of ``header``'s over ``MAX_VOLUME_BYTES``."""
    total = count * header.rows * header.columns * 2
    if total > MAX_VOLUME_BYTES:
        limit = MAX_VOLUME_BYTES / 2**30
        raise PixelDecodeError(
            header.path, f"{count} slices would need {total / 2**30:.1f} GiB, over the {limit:.0f} GiB limit"
        )


def allocate_volume(shape: tuple[int, int, int]) -> np.ndarray:
    """An int16 array for a whole volume, its pages faulted in up front without holding the GIL.

    ``np.empty`` asks for transparent huge pages; on virtual machines the kernel then sometimes
    compacts memory at the first touch and a 150 MB load stalls for 0.1-0.3 s. One anonymous mapping
    of small pages, populated in one system call, costs a steady ~50-150 ms instead. The call goes
    through ctypes, which lets other threads run meanwhile: ``mmap``'s MAP_POPULATE held the GIL
    and froze the window for as long while a study loaded in the background.
    """
    if _allocator is not None:
        return _allocator(shape)
    nbytes = int(np.prod(shape)) * 2
    if nbytes < 4 * 2**20 or _LIBC is None:
        return np.empty(shape, dtype=np.int16)
    buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    array = np.frombuffer(buffer, dtype=np.int16).reshape(shape)
    populate(array)
    return array


def populate(array: np.ndarray, write: bool = True) -> None:
    """Fault in the pages of a memory-mapped ``array`` in one system call per chunk, without the GIL
    (``write=False`` for a read-only mapping: its reader would otherwise fault them in one by one).

    In chunks: populating holds the process's memory-map lock, and a window thread that maps memory
    meanwhile (a repaint) waits for it. Fails on kernels before 5.14: the pages are then faulted in
    at the first touch."""
    if _LIBC is None or array.nbytes < 4 * 2**20:
        return
    start, nbytes = array.ctypes.data, array.nbytes
    for offset in range(0, nbytes, _POPULATE_CHUNK):
        size = min(_POPULATE_CHUNK, nbytes - offset)
        advice = _MADV_POPULATE_WRITE if write else _MADV_POPULATE_READ
        _LIBC.madvise(ctypes.c_void_p(start + offset), ctypes.c_size_t(size), advice)


_allocator: Callable[[tuple[int, int, int]], np.ndarray] | None = None


def use_allocator(allocator: Callable[[tuple[int, int, int]], np.ndarray] | None) -> None:
    """Have ``allocate_volume`` make every volume with ``allocator`` (the loader process's shared
    memory, ``core.dicom.loader_process``); None for the default."""
    global _allocator
    _allocator = allocator


def allocate_ahead(shape: tuple[int, int, int]) -> Callable[[tuple[int, int, int]], np.ndarray]:
    """Start ``allocate_volume(shape)`` on a helper thread (the caller reads headers meanwhile).

    The returned function waits for it and gives the volume for the final shape: the one
    allocated ahead when the shapes agree, else a fresh one.
    """
    made: list[np.ndarray] = []
    thread = threading.Thread(target=lambda: made.append(allocate_volume(shape)), daemon=True)
    thread.start()

    def take(final: tuple[int, int, int]) -> np.ndarray:
        thread.join()
        if made and made[0].shape == tuple(final):
            return made.pop()
        made.clear()  # freed before the fresh one is made: the peak stays one volume
        return allocate_volume(final)

    return take


def prefetch(paths: Sequence[str | os.PathLike]) -> None:
    """Have the kernel start reading ``paths`` on a helper thread, all of them at once.

    From a cold page cache the loader then waits on the disk once, with many reads queued,
    instead of once per file; from a warm one this costs a few milliseconds off the main thread.
    """
    if not hasattr(os, "posix_fadvise"):
        return

    def run() -> None:
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue  # the loader reports it
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass
            finally:
                os.close(fd)

    threading.Thread(target=run, daemon=True).start()


def read_raw_into(header: SliceHeader, out: np.ndarray) -> None:
    """Read native little-endian 16-bit pixels of ``header`` straight into ``out`` (int16 2D)."""
    need = header.rows * header.columns * 2
    try:
        with open(header.path, "rb") as fp:
            fp.seek(header.pixel_offset)
            got = fp.readinto(memoryview(out).cast("B"))
    except OSError as exc:
        raise PixelDecodeError(header.path, f"cannot read pixel data ({exc.__class__.__name__})") from exc
    if got != need:
        raise PixelDecodeError(header.path, f"truncated file: {got} of {need} pixel bytes present")


def stored_to_hu(raw: np.ndarray, header: SliceHeader, out: np.ndarray) -> None:
    """Convert one slice of stored values to HU in ``out`` (int16).

    ``raw`` may alias ``out`` (the fast path reads into the volume, then converts in place).
    Padding (PixelPaddingValue) and values below air (the area outside the reconstruction circle,
    often stored as -2000 or -3024) become -1024 HU, so windows and models see air there.
    """
    raw = _true_stored_values(raw, header)
    padding = None
    if header.padding_value is not None and header.padding_value * header.slope + header.intercept > AIR_HU:
        padding = raw == header.padding_value  # only when the clamp below would not catch it
    slope, intercept = header.slope, header.intercept
    if slope == 1.0 and float(intercept).is_integer() and abs(intercept) < 32768 and _fits_int16(raw, header):
        # The common case, done in place in int16: clamp so that the add cannot overflow.
        values = raw.view(np.int16)
        shift = int(intercept)
        low, high = max(AIR_HU - shift, -32768), min(INT16_MAX - shift, INT16_MAX)
        if values is not out:
            out[...] = values
        least, most = _stored_range(raw, header)
        # Clamp only what the stored range can reach; a row operand keeps numpy on its fast loop
        # (a scalar one is ~5x slower for int16). 12-bit unsigned data with intercept -1024 skips both.
        if least < low:
            np.maximum(out, np.full(out.shape[-1], low, np.int16), out=out)
        if most > high:
            np.minimum(out, np.full(out.shape[-1], high, np.int16), out=out)
        out += np.int16(shift)
    else:
        hu = raw.astype(np.float32) * np.float32(slope) + np.float32(intercept)
        np.rint(hu, out=hu)
        np.clip(hu, AIR_HU, INT16_MAX, out=hu)
        out[...] = hu
    if padding is not None and padding.any():
        out[padding] = AIR_HU


def _true_stored_values(raw: np.ndarray, header: SliceHeader) -> np.ndarray:
    """Sign-extend or mask 16-bit data to BitsStored (in place when ``raw`` is 16-bit)."""
    if raw.dtype.itemsize != 2:
        return raw
    if header.pixel_representation == 1:
        values = raw.view(np.int16)
        if header.bits_stored < 16:
            shift = 16 - header.bits_stored
            np.left_shift(values, shift, out=values)
            np.right_shift(values, shift, out=values)
        return values
    values = raw.view(np.uint16)
    if header.bits_stored < 16:  # unsigned: high bits may hold overlays in old files
        np.bitwise_and(values, np.uint16((1 << header.bits_stored) - 1), out=values)
    return values


def _stored_range(values: np.ndarray, header: SliceHeader) -> tuple[int, int]:
    """The least and greatest value ``_true_stored_values`` can give for this header."""
    info = np.iinfo(values.dtype)
    bits = header.bits_stored
    if not 0 < bits < info.bits:
        return int(info.min), int(info.max)
    if info.min < 0:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _fits_int16(raw: np.ndarray, header: SliceHeader) -> bool:
    """Whether stored values are representable as int16 without looking at them."""
    if raw.dtype == np.int16:
        return True
    if raw.dtype == np.uint16:
        return header.bits_stored <= 15
    return False


def shift_slice(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Move a slice by (dx, dy) pixels with bilinear interpolation, filling with air."""
    out = np.full(image.shape, AIR_HU, dtype=np.float32)
    src = image.astype(np.float32)
    ix, fx = int(np.floor(dx)), dx - np.floor(dx)
    iy, fy = int(np.floor(dy)), dy - np.floor(dy)
    acc = np.zeros_like(out)
    weight = np.zeros_like(out)
    for oy, wy in ((iy, 1 - fy), (iy + 1, fy)):
        for ox, wx in ((ix, 1 - fx), (ix + 1, fx)):
            w = wy * wx
            if w == 0:
                continue
            dst, srcs = _overlap(image.shape, ox, oy)
            if dst is None:
                continue
            acc[dst] += w * src[srcs]
            weight[dst] += w
    valid = weight > 0.999
    out[valid] = acc[valid] / weight[valid]
    return np.rint(out).astype(np.int16)


def _overlap(shape, ox, oy):
    """Slices (dst, src) so that dst[y, x] = src[y - oy, x - ox] within bounds."""
    h, w = shape
    if abs(ox) >= w or abs(oy) >= h:
        return None, None
    dy0, sy0 = max(oy, 0), max(-oy, 0)
    dx0, sx0 = max(ox, 0), max(-ox, 0)
    hh, ww = h - abs(oy), w - abs(ox)
    return (slice(dy0, dy0 + hh), slice(dx0, dx0 + ww)), (
        slice(sy0, sy0 + hh),
        slice(sx0, sx0 + ww),
    )


def resampled_count(positions: np.ndarray, spacing: float) -> int:
    """How many slices ``resample_z`` makes of slices at ``positions``."""
    return round(float(positions[-1] - positions[0]) / spacing) + 1


def resample_z(volume: np.ndarray, positions: np.ndarray, spacing: float) -> np.ndarray:
    """Linear interpolation of slices at ``positions`` onto a regular grid of ``spacing`` mm."""
    count = resampled_count(positions, spacing)
    target = positions[0] + np.arange(count) * spacing
    out = np.empty((count, *volume.shape[1:]), dtype=np.int16)
    upper = np.clip(np.searchsorted(positions, target, side="right"), 1, len(positions) - 1)
    for k, z in enumerate(target):
        hi = upper[k]
        lo = hi - 1
        t = (z - positions[lo]) / (positions[hi] - positions[lo])
        t = min(max(t, 0.0), 1.0)
        mixed = (1 - t) * volume[lo].astype(np.float32) + t * volume[hi].astype(np.float32)
        out[k] = np.rint(mixed).astype(np.int16)
    return out
