"""Bones of the phantom chest, drawn one axial slice at a time: ribs, spine and sternum.

Coordinates are the canonical frame of ``core.phantom.torso`` (mm, x to the patient's left, y posterior,
z superior, body axis at x = y = 0). Bones get a dense cortical rim around cancellous marrow, so they
read as bone at both windows rather than as bright blobs.

Ribs are curved bands that follow the inner chest wall around the body and fall as they run forward
(head at vertebra k, anterior end several levels lower). An axial plane therefore cuts each rib where
it crosses that height: long arcs near the spine, where a rib is almost horizontal, and short ovals at
the side and front, where it is steep, as on real CT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.phantom.shapes import F32, coverage, paint

CORTEX_HU = 850.0
MARROW_HU = 230.0
RIB_CORTEX_HU = 700.0
RIB_MARROW_HU = 170.0
CARTILAGE_HU = 120.0
DISC_HU = 85.0
CANAL_HU = 25.0
CORTEX_MM = 1.3


@dataclass(frozen=True)
class Spine:
    """Spine geometry (canonical mm)."""

    body_y: float  # y of the vertebral bodies' centre
    pitch: float  # one vertebral level, disc included
    top_disc_z: float  # z of the disc above T1; discs repeat every ``pitch`` below (and above)
    disc: float = 5.0  # disc height

    def body_radii(self, z: float) -> tuple[float, float]:
        """Vertebral body half-width and half-depth: bodies grow from T1 down to the lumbar spine."""
        rx = float(np.interp(z, [-60.0, 20.0, 270.0, 330.0], [24.0, 21.0, 14.0, 11.0]))
        return rx, 0.82 * rx

    def level(self, z: float) -> tuple[int, float]:
        """Vertebral level index (0 = T1, 1 = T2, ...) and the mm from the disc below the plane."""
        below = (self.top_disc_z - z) / self.pitch
        k = int(np.floor(below))
        return k, self.pitch * (k + 1 - below)


@dataclass(frozen=True)
class Ribs:
    """Twelve pairs; rib k's head sits at vertebral level k and its shaft falls ``drop[k]`` mm forward."""

    head_z: np.ndarray  # (12,) z of each rib head
    drop: np.ndarray  # (12,) fall from head to anterior end
    reach: np.ndarray  # (12,) fraction of the way round to the sternum (floating ribs are short)
    height: np.ndarray  # (12,) cranio-caudal size of the shaft
    thickness: float = 6.0  # radial size of the shaft
    back_angle: float = 0.42  # rad from the posterior midline where the rib head sits
    front_angle: float = 0.30  # rad from the anterior midline where the cartilage meets the sternum
    cartilage_from: float = 0.78  # fraction of the way round where bone turns into costal cartilage


def make_ribs(spine: Spine, rng: np.random.Generator) -> Ribs:
    k = np.arange(12)
    head_z = spine.top_disc_z - spine.pitch * (k + 0.55)
    drop = np.where(k == 0, 16.0, 42.0 + 9.0 * (k - 1)) * rng.uniform(0.92, 1.08)
    reach = np.select([k < 7, k < 10, k == 10], [1.0, 0.9, 0.62], 0.45)
    height = np.where(k == 0, 13.0, np.where(k < 9, 10.5, 9.0))
    return Ribs(head_z, drop, reach, height)


def paint_ribs(hu, ribs: Ribs, z, r, theta, cav_radius, pixel, thickness) -> None:
    """Paint the ribs that cross plane ``z``.

    Args:
        hu: 2D float32 slice, painted in place.
        r, theta: polar coordinates of every pixel around the body axis (theta 0 = patient's left).
        cav_radius: radius of the inner chest wall (pleura) at each pixel's angle.
    """
    t = ribs.thickness
    offset = r - cav_radius - 2.0 - t / 2  # radial position in the rib's shaft, 0 at its centre
    band = np.nonzero(np.abs(offset) < t / 2 + pixel)
    if band[0].size == 0:
        return
    off = offset[band]
    from_back = np.abs(np.angle(np.exp(1j * (theta[band] - np.pi / 2))))  # 0 at the spine, pi at sternum
    span = np.pi - ribs.back_angle - ribs.front_angle
    u = (from_back - ribs.back_angle) / span  # 0 at the rib head, 1 at the sternum
    # A rib runs level near the spine, falls steeply round the side and levels off in front.
    run = np.clip((u - 0.1) / 0.75, 0.0, 1.0)
    profile = run * run * (3 - 2 * run)
    # Nearest rib: guess with a typical drop, then refine with that rib's own drop.
    pitch = ribs.head_z[0] - ribs.head_z[1]
    k = np.clip(np.rint((ribs.head_z[0] - z - 70.0 * profile) / pitch), 0, 11).astype(np.intp)
    k = np.clip(np.rint((ribs.head_z[0] - z - ribs.drop[k] * profile) / pitch), 0, 11).astype(np.intp)
    dz = z - (ribs.head_z[k] - ribs.drop[k] * profile)
    half_h = ribs.height[k] / 2
    keep = (np.abs(dz) < half_h + thickness) & (u > -0.02) & (u < ribs.reach[k])
    if not keep.any():
        return
    rows, cols = band[0][keep], band[1][keep]
    off, dz, half_h, u, k, run = off[keep], dz[keep], half_h[keep], u[keep], k[keep], run[keep]
    # Elliptic cross-section: implicit f = 1 - (off/a)^2 - (dz/b)^2, blurred by the voxel's extent along
    # its gradient (in-plane along the radius and along the arc, where dz changes with the rib's slope).
    a = t / 2
    slope = ribs.drop[k] * 8.0 * run * (1 - run) / (span * np.maximum(cav_radius[rows, cols], 20))
    f_out = 1 - (off / a) ** 2 - (dz / half_h) ** 2
    grad = 2 * np.abs(off) / a**2 * pixel + 2 * np.abs(dz) / half_h**2 * (slope * pixel + thickness)
    outer = np.clip(0.5 + f_out / np.maximum(grad, 1e-3), 0, 1).astype(F32)
    ai, bi = max(a - CORTEX_MM, 0.8), np.maximum(half_h - CORTEX_MM, 0.8)
    f_in = 1 - (off / ai) ** 2 - (dz / bi) ** 2
    grad_in = 2 * np.abs(off) / ai**2 * pixel + 2 * np.abs(dz) / bi**2 * (slope * pixel + thickness)
    inner = np.clip(0.5 + f_in / np.maximum(grad_in, 1e-3), 0, 1).astype(F32)
    cartilage = np.clip((u - ribs.cartilage_from) / 0.03, 0, 1).astype(F32)
    # Costal cartilage has no cortex: it reads as soft-tissue-plus, not bone.
    values = hu[rows, cols]
    paint(values, outer, RIB_CORTEX_HU * (1 - cartilage) + CARTILAGE_HU * cartilage)
    paint(values, inner * (1 - cartilage), RIB_MARROW_HU)
    hu[rows, cols] = values


def paint_scapulae(hu, z, r, theta, cav_radius, pixel, thickness) -> None:
    """Both shoulder blades: thin triangular plates on the back of the chest wall, outside the ribs.

    On axial slices each is an oblique line of bone behind the ribs, thicker at its lateral border and,
    up high, where the scapular spine crosses it; its lower tip comes to a point (the inferior angle).
    """
    if not 165.0 < z < 268.0:
        return
    medial = 0.42  # rad from the posterior midline
    lateral = float(np.interp(z, [165, 200, 245, 268], [0.5, 0.95, 1.25, 1.2]))
    offset = r - cav_radius - 19.0  # radial position in the plate, outside the ribs and subscapularis
    band = np.nonzero(np.abs(offset) < 7.0)
    from_back = np.abs(np.angle(np.exp(1j * (theta[band] - np.pi / 2))))
    keep = (from_back > medial - 0.05) & (from_back < lateral + 0.05)
    if not keep.any():
        return
    rows, cols = band[0][keep], band[1][keep]
    off, angle = offset[rows, cols], from_back[keep]
    across = np.minimum(angle - medial, lateral - angle) / 0.06  # > 0 inside the plate, radians to mm-ish
    spine_ridge = 5.0 * float(np.exp(-(((z - 246) / 7) ** 2)))
    half = 1.3 + 2.2 * np.exp(-(((lateral - angle) / 0.08) ** 2)) + spine_ridge * (angle > medial + 0.1)
    d = np.maximum(np.abs(off - half + 1.3) - half, -across * 2.0)
    ends = float(np.clip(0.5 + min(z - 165.0, 268.0 - z) / thickness, 0, 1))
    values = hu[rows, cols]
    paint(values, coverage(d, pixel) * ends, RIB_CORTEX_HU)
    paint(values, coverage(d + CORTEX_MM, pixel) * ends, RIB_MARROW_HU)
    hu[rows, cols] = values


def _bone(hu, d, pixel, marrow, texture) -> None:
    """Paint a bone given its signed distance field: cortical rim, textured cancellous core."""
    paint(hu, coverage(d, pixel), CORTEX_HU)
    paint(hu, coverage(d + CORTEX_MM, pixel), marrow + texture)


def spine_window(spine: Spine, z: float) -> tuple[float, float, float, float]:
    """Canonical x/y bounds holding the vertebra at ``z`` and its processes."""
    rx, _ = spine.body_radii(z)
    return -rx - 32.0, rx + 32.0, spine.body_y - rx - 4.0, spine.body_y + rx + 52.0


def spine_envelope(spine: Spine, z: float, x, y) -> np.ndarray:
    """Distance (mm) to the spinal column as the lungs see it: body plus the posterior elements."""
    rx, ry = spine.body_radii(z)
    body = np.sqrt((x / rx) ** 2 + ((y - spine.body_y) / ry) ** 2)
    d_body = (body - 1) * ry
    d_back = np.maximum(np.abs(x) - rx * 0.9, spine.body_y - y)  # everything behind the body's centre
    return np.minimum(d_body, d_back)


def paint_spine(hu, spine: Spine, z, x, y, pixel, thickness, texture) -> None:
    """Paint one vertebra (body, disc, canal, arch, spinous and transverse processes) in a window.

    ``x`` (row vector) and ``y`` (column vector) are the window's canonical coordinates.
    """
    rx, ry = spine.body_radii(z)
    _, above_disc = spine.level(z)
    by = spine.body_y
    # Discs: a soft-tissue plate between vertebral bodies, blurred over the slice thickness.
    from_disc_centre = min(abs(above_disc - spine.disc / 2), abs(above_disc - spine.pitch - spine.disc / 2))
    disc = float(np.clip(0.5 - (from_disc_centre - spine.disc / 2) / thickness, 0, 1))
    waist = 1.0 - 0.06 * np.sin(np.pi * np.clip(above_disc / spine.pitch, 0, 1))  # bodies are waisted
    body = np.sqrt((x / (rx * waist)) ** 2 + ((y - by) / (ry * waist)) ** 2)
    d_body = (body - 1) * ry * waist
    canal_r = 7.5 if z > 0 else 9.0
    canal_y = by + ry + canal_r + 1.5
    d_canal = np.sqrt(x * x + (y - canal_y) ** 2) - canal_r
    # Neural arch: a ring round the canal, with gaps between the laminae of successive vertebrae.
    outside_level = max(0.15 * spine.pitch - above_disc, above_disc - 0.95 * spine.pitch)
    d_arch = np.maximum(np.abs(d_canal - 3.0) - 3.0, outside_level)
    phase = above_disc / spine.pitch
    pieces = [d_arch]
    # Spinous processes slant down and back, longer than a level: this plane may cut this vertebra's
    # and the one above's, each as an oval detached behind the arch.
    sy0, drop, reach = canal_y + canal_r + 3.0, 30.0, 26.0
    for start in (z + spine.pitch - above_disc - 3.0, z + 2 * spine.pitch - above_disc - 3.0):
        t = (start - z) / drop
        if 0.0 <= t <= 1.0:
            centre = sy0 + reach * t
            radius = 3.4 - 1.0 * t
            stretch = float(np.hypot(reach, drop) / drop)  # an oblique rod cuts as an elongated oval
            pieces.append(np.sqrt(x * x + ((y - centre) / stretch) ** 2) - radius)
    if 0.45 < phase < 0.95 and z > -30:  # transverse processes reach back and out to the ribs
        for side in (-1.0, 1.0):
            x0, y0 = side * (canal_r + 4), canal_y - 1
            x1, y1 = side * (rx + 19), canal_y + 7
            vx, vy = x1 - x0, y1 - y0
            tt = np.clip(((x - x0) * vx + (y - y0) * vy) / (vx * vx + vy * vy), 0, 1)
            pieces.append(np.sqrt((x - x0 - tt * vx) ** 2 + (y - y0 - tt * vy) ** 2) - 4.5)
    d_post = pieces[0]
    for piece in pieces[1:]:
        d_post = np.minimum(d_post, piece)
    # Endplates are denser than the mid-body marrow.
    to_disc = min(above_disc - spine.disc, spine.pitch - above_disc)
    marrow = MARROW_HU + 250.0 * float(np.exp(-max(to_disc, 0.0) / 1.5))
    body_cov = coverage(d_body, pixel)
    paint(hu, body_cov * disc, DISC_HU)
    if disc < 1.0:
        paint(hu, body_cov * (1 - disc), CORTEX_HU)
        paint(hu, coverage(d_body + CORTEX_MM, pixel) * (1 - disc), marrow + texture)
    _bone(hu, d_post, pixel, MARROW_HU + 60.0, texture)
    paint(hu, coverage(d_canal, pixel), CANAL_HU)


def paint_sternum(hu, z, x, y, front_y, pixel, texture) -> None:
    """Sternum: manubrium, body and xiphoid, a flat plate at the front of the chest wall.

    ``front_y`` is the y of the inner anterior chest wall (the sternum's back surface) at this height.
    """
    half_w = float(np.interp(z, [108, 122, 135, 222, 230, 248, 256], [0, 6, 14, 15, 26, 24, 0]))
    if half_w <= 0:
        return
    half_d = 6.0 if z > 135 else 4.5
    cy = front_y - half_d - 1.0
    d = (np.sqrt((x / half_w) ** 2 + ((y - cy) / half_d) ** 2) - 1) * half_d
    _bone(hu, d, pixel, MARROW_HU, texture)
