"""Pictures of a nodule for reports (numpy only): its key axial image and a three-plane triptych.

Every picture is a square patch at the lung window (W1500/L-600) centred on the marker and sampled in
millimetres (bilinear), so voxels that are not cubes still show the right shape, with the marker circle
drawn as a double ring: a light line inside a dark one, so it reads on lung and on soft tissue alike and
in black-and-white print. The planes come from ``core.imaging.mpr``: radiological orientation (the patient's
right on the image's left; anterior at the top of the axial image, superior at the top of the coronal
and sagittal ones, anterior on the sagittal image's left), whatever the order the series was stored in.
Outside the scan is black. ``prior_view_image`` cuts the same patch (same pixels in mm, orientation
and window) out of a prior study through a follow-up's registration, for prior/current pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.followup.register import Registration
from core.imaging.mpr import plane
from core.report.content import NoduleReport
from core.volume import CTVolume

LUNG_WINDOW = (1500.0, -600.0)  # width, level (HU)
KEY_CROP_MM = 100.0  # field of view of the key image
KEY_SIZE_PX = 512
TRIPTYCH_CROP_MM = 60.0  # field of view of each triptych panel
TRIPTYCH_SIZE_PX = 256  # each panel
TRIPTYCH_GAP_PX = 8  # white between panels
TRIPTYCH_VIEWS = ("axial", "coronal", "sagittal")
LIGHT, DARK = 255.0, 0.0  # the ring's two lines


def view_image(
    volume: CTVolume,
    centre_mm: Sequence[float],
    diameter_mm: float,
    view: str = "axial",
    size_px: int = TRIPTYCH_SIZE_PX,
    crop_mm: float = TRIPTYCH_CROP_MM,
    window: tuple[float, float] = LUNG_WINDOW,
    ring: bool = True,
) -> np.ndarray:
    """uint8 RGB ``(size_px, size_px, 3)``: ``view`` through ``centre_mm`` (patient LPS mm), ``crop_mm``
    wide and high around it, at ``window`` (width, level), with the marker circle when ``ring``."""
    _check_view(size_px, crop_mm)
    view_plane = plane(volume, view)
    u0, v0, depth = view_plane.to_screen(volume.mm_to_voxel(np.asarray(centre_mm, np.float64)))
    image = view_plane.image(volume.array, round(depth))
    pixel_w, pixel_h = view_plane.pixel_mm
    offsets = _offsets_mm(size_px, crop_mm)
    hu = _bilinear(image, v0 + offsets / pixel_h - 0.5, u0 + offsets / pixel_w - 0.5)
    if not 0.0 <= depth + 0.5 <= view_plane.depth:  # the slice itself lies outside the scan
        hu[:] = -3000.0
    return _picture(hu, window, diameter_mm / 2.0 / crop_mm * size_px if ring else None)


def prior_view_image(
    prior: CTVolume,
    current: CTVolume,
    registration: Registration,
    centre_mm: Sequence[float],
    diameter_mm: float,
    size_px: int = TRIPTYCH_SIZE_PX,
    crop_mm: float = TRIPTYCH_CROP_MM,
    window: tuple[float, float] = LUNG_WINDOW,
    ring: bool = True,
) -> np.ndarray:
    """uint8 RGB ``(size_px, size_px, 3)``: the patch ``view_image(current, centre_mm, ...)`` shows
    (the current study's axial slice through ``centre_mm``, current LPS mm), cut from ``prior``
    instead: each pixel's point carried into the prior by ``registration`` (current -> prior) and
    sampled there (trilinear), so the two show the same anatomy at the same scale, orientation and
    window, the patient's repositioning undone. Outside the prior is black."""
    from scipy import ndimage

    _check_view(size_px, crop_mm)
    view_plane = plane(current, "axial")
    u0, v0, depth = view_plane.to_screen(current.mm_to_voxel(np.asarray(centre_mm, np.float64)))
    index = round(depth)
    corner = view_plane.to_voxel(0.0, 0.0, index)
    along_u, along_v = (
        view_plane.to_voxel(1.0, 0.0, index) - corner,
        view_plane.to_voxel(0.0, 1.0, index) - corner,
    )
    pixel_w, pixel_h = view_plane.pixel_mm
    offsets = _offsets_mm(size_px, crop_mm)
    u, v = u0 + offsets / pixel_w, v0 + offsets / pixel_h
    voxels = corner + v[:, None, None] * along_v + u[None, :, None] * along_u  # (rows, cols, xyz)
    at_prior = prior.mm_to_voxel(registration.to_prior(current.voxel_to_mm(voxels)))
    hu = ndimage.map_coordinates(
        prior.array, np.moveaxis(at_prior[..., ::-1], -1, 0), order=1, mode="constant", cval=-3000.0,
        output=np.float32,
    )  # fmt: skip
    return _picture(hu, window, diameter_mm / 2.0 / crop_mm * size_px if ring else None)


def key_image(
    volume: CTVolume, nodule: NoduleReport, size_px: int = KEY_SIZE_PX, crop_mm: float = KEY_CROP_MM
) -> np.ndarray:
    """uint8 RGB ``(size_px, size_px, 3)``: the axial slice through the nodule at the lung window,
    ``crop_mm`` around it, with the marker circle."""
    marker = nodule.marker
    return view_image(volume, marker.centre_mm, marker.diameter_mm, "axial", size_px, crop_mm)


def triptych(
    volume: CTVolume,
    nodule: NoduleReport,
    size_px: int = TRIPTYCH_SIZE_PX,
    crop_mm: float = TRIPTYCH_CROP_MM,
    gap_px: int = TRIPTYCH_GAP_PX,
) -> np.ndarray:
    """uint8 RGB ``(size_px, 3 * size_px + 2 * gap_px, 3)``: axial, coronal and sagittal patches
    through the nodule centre, left to right, white between them, each with the marker circle."""
    marker = nodule.marker
    panels = [
        view_image(volume, marker.centre_mm, marker.diameter_mm, view, size_px, crop_mm)
        for view in TRIPTYCH_VIEWS
    ]
    gap = np.full((size_px, gap_px, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)


def _check_view(size_px: int, crop_mm: float) -> None:
    if size_px < 8 or not np.isfinite(crop_mm) or crop_mm <= 0:
        raise ValueError(f"a view needs at least 8 px and a positive field of view, not {size_px}, {crop_mm}")


def _offsets_mm(size_px: int, crop_mm: float) -> np.ndarray:
    """Each pixel centre's distance from the patch centre, in mm (one axis)."""
    return ((np.arange(size_px) + 0.5) / size_px - 0.5) * crop_mm


def _picture(hu: np.ndarray, window: tuple[float, float], ring_px: float | None) -> np.ndarray:
    """uint8 RGB of the HU patch ``hu`` at ``window`` (width, level), with the marker circle of radius
    ``ring_px`` (None: none)."""
    width, level = window
    grey = np.clip((hu - (level - width / 2.0)) * (255.0 / width), 0.0, 255.0)
    if ring_px is not None:
        grey = _draw_ring(grey, radius_px=ring_px)
    out = np.round(grey).astype(np.uint8)
    return np.repeat(out[:, :, None], 3, axis=2)


def _bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``image`` sampled on the grid ``rows`` x ``cols`` (fractional pixel-centre indices), float32;
    points more than half a pixel outside the image read as -3000 HU (black at any window)."""
    height, width = image.shape
    r0 = np.floor(rows).astype(np.int64)
    c0 = np.floor(cols).astype(np.int64)
    tr = (rows - r0).astype(np.float32)[:, None]
    tc = (cols - c0).astype(np.float32)[None, :]
    ra, rb = np.clip(r0, 0, height - 1), np.clip(r0 + 1, 0, height - 1)
    ca, cb = np.clip(c0, 0, width - 1), np.clip(c0 + 1, 0, width - 1)
    data = image.astype(np.float32)
    top, bottom = data[ra], data[rb]
    by_rows = top * (1.0 - tr) + bottom * tr  # (len(rows), width)
    out = by_rows[:, ca] * (1.0 - tc) + by_rows[:, cb] * tc
    outside = ((rows < -0.5) | (rows > height - 0.5))[:, None] | ((cols < -0.5) | (cols > width - 0.5))[
        None, :
    ]
    out[outside] = -3000.0
    return out


def _draw_ring(grey: np.ndarray, radius_px: float) -> np.ndarray:
    """The marker circle on a float grey image (0..255, centred): a light line just outside
    ``radius_px`` and a dark line outside that, anti-aliased."""
    size = grey.shape[0]
    line = max(1.5, size / 200.0)  # each line's width in pixels
    inner = radius_px + max(1.0, size / 400.0)  # a small gap keeps the nodule's edge visible
    centres = np.arange(size) + 0.5 - size / 2.0
    distance = np.hypot(*np.meshgrid(centres, centres))
    out = grey.astype(np.float32, copy=True)
    for start, value in ((inner, LIGHT), (inner + line, DARK)):
        cover = np.clip(distance - start + 0.5, 0.0, 1.0) * np.clip(start + line - distance + 0.5, 0.0, 1.0)
        out = out * (1.0 - cover) + value * cover
    return out
