"""Per-slice rendering of the torso: body wall, mediastinum, upper abdomen, bones and the lung fields.

Geometry lives in the canonical frame of ``core.phantom.patient`` (mm; x to the patient's left, y
posterior, z superior). ``SliceRenderer`` draws any axial plane of a ``Patient`` on any grid, so the
same code makes the full-resolution volume and the coarse lung map the vessel trees grow in.

Outlines of the body, the subcutaneous fat and the thoracic cavity are star-shaped around the body
axis: one radius per angle, tabulated per slice and gathered per pixel. The lungs are what is left of
the cavity once the mediastinal envelope (a smooth union of heart, great vessels, airways, oesophagus
and spine, with a fat margin) is taken away, above the diaphragm domes and below the apices.
"""

from __future__ import annotations

import numpy as np

from core.phantom import skeleton
from core.phantom.noise import SmoothField
from core.phantom.patient import APEX_CURVATURE, FISSURES, Patient, fissure_distances
from core.phantom.shapes import (
    F32,
    coverage,
    ellipsoid_distance_2d,
    paint,
    segment_box,
    segment_distance_2d,
    smooth_min,
    superellipse_radius,
)

AIR_HU, LUNG_HU, FAT_HU, SKIN_HU, MUSCLE_HU = -1000.0, -865.0, -100.0, 25.0, 45.0
BLOOD_HU, WALL_HU, LIVER_HU, SPLEEN_HU, GASTRIC_HU = 40.0, 30.0, 58.0, 48.0, 15.0
TABLE_SHELL_HU, TABLE_CORE_HU, FISSURE_HU = 160.0, -940.0, 20.0
N_THETA = 1024
ENVELOPE_MARGIN = 2.5  # mm of mediastinal fat between a structure and the lung
ENVELOPE_SMOOTH = 9.0  # mm: creases narrower than this between mediastinal structures fill with fat

# Body proportions along z relative to mid-chest: half-width, front and back half-depths.
_Z = [-150, -20, 40, 90, 150, 200, 235, 255, 275, 300, 340, 450]
_PROFILE = {
    "a": [0.90, 0.92, 0.95, 0.98, 1.0, 1.0, 0.99, 0.97, 0.92, 0.80, 0.64, 0.60],
    "bf": [1.04, 1.05, 1.04, 1.0, 1.0, 0.98, 0.95, 0.91, 0.84, 0.72, 0.62, 0.60],
    "bb": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.98, 0.96, 0.93, 0.86, 0.76, 0.72],
}


def _grain(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Unit-std, finely correlated 2D noise for cancellous bone and organ texture."""
    g = rng.standard_normal(shape).astype(F32)
    for axis in (0, 1):
        g = 0.25 * np.roll(g, 1, axis) + 0.5 * g + 0.25 * np.roll(g, -1, axis)
    return g / g.std()


def _angle_from(theta: np.ndarray, centre: float) -> np.ndarray:
    """Unsigned angle (rad) between ``theta`` and ``centre``."""
    return np.abs(np.angle(np.exp(1j * (theta - centre))))


class SliceRenderer:
    """Draws axial slices of a ``Patient`` on a fixed grid.

    Only the crop that can hold the body is computed per slice; ``background`` (air and the scanner
    table, the same on every slice) fills the rest.

    Args:
        patient: the proportions.
        xs, ys: canonical x of each column and y of each row (ascending).
        pixel: canonical pixel size (mm); thickness: canonical slice thickness (mm).
        rng: draws the texture fields; ``None`` for a renderer that only computes lung coverage.
    """

    def __init__(self, patient: Patient, xs, ys, pixel: float, thickness: float, rng=None):
        self.p = patient
        self.pixel, self.thickness = float(pixel), float(thickness)
        xs, ys = np.asarray(xs, dtype=F32), np.asarray(ys, dtype=F32)
        self.background = np.full((len(ys), len(xs)), AIR_HU, dtype=F32)
        _table(self.background, xs, ys, patient.body[2] + 4.0, self.pixel)
        half = patient.body[0] + 4
        self.crop = _window(xs, ys, -half, half, -patient.body[1] * 1.06 - 4, patient.body[2] + 4)
        self.xs, self.ys = xs[self.crop[1]], ys[self.crop[0]]
        self.X, self.Y = self.xs[None, :], self.ys[:, None]
        self.shape = (len(self.ys), len(self.xs))
        self.r = np.hypot(self.X, self.Y).astype(F32)
        self.theta = np.arctan2(self.Y, self.X).astype(F32)
        self.tidx = ((self.theta + np.pi) * (N_THETA / (2 * np.pi))).astype(np.intp) % N_THETA
        self.theta_tab = -np.pi + (np.arange(N_THETA) + 0.5) * (2 * np.pi / N_THETA)
        self.med = self.window(-140, 140, -118, 90)
        if rng is not None:
            self.lung_texture = SmoothField(rng, self.xs, self.ys, (-200.0, 500.0), 9.0)
            self.grain = _grain((self.shape[0] + 32, self.shape[1] + 32), rng)

    def window(self, x0, x1, y0, y1):
        """Row and column slices of the crop inside canonical bounds (``None`` if empty)."""
        return _window(self.xs, self.ys, x0, x1, y0, y1)

    def outlines(self, z: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Radii per angle of the skin, the inside of the subcutaneous fat and the pleural cavity.

        The chest wall is thin at the sides, thick where the pectorals, the paraspinal muscles and the
        shoulder girdle lie, so the cavity follows the body's shape rather than being drawn on its own.
        """
        p, th = self.p, self.theta_tab
        prof = {k: float(np.interp(z, _Z, v)) for k, v in _PROFILE.items()}
        skin = superellipse_radius(
            th, p.body[0] * prof["a"], p.body[1] * prof["bf"], p.body[2] * prof["bb"], 2.15, 2.7
        )
        belly = float(np.clip((60 - z) / 80, 0, 1))
        fat = p.fat * (0.8 + 0.4 * np.abs(np.cos(th))) * (1 + 0.7 * belly * (np.sin(th) < 0))
        muscle_in = skin - 1.8 - fat
        back, front = _angle_from(th, np.pi / 2), _angle_from(th, -np.pi / 2)
        pect = float(np.interp(z, [80, 130, 180, 250, 290], [4, 7, 15, 17, 12]))
        scap = float(np.interp(z, [130, 175, 255, 290], [0, 22, 26, 12]))
        shoulder = float(np.interp(z, [230, 265, 300], [0, 20, 45]))
        muscle = (
            7.0
            + pect * np.exp(-((front / 0.75) ** 2))
            + 38.0 * np.exp(-((back / 0.5) ** 2))
            + scap * np.exp(-(((back - 0.95) / 0.35) ** 2))
            + shoulder
        )
        cav = muscle_in - muscle - 9.0
        ax, ay, az = p.apex
        if z > az - 80:
            # Near the top the rib cage closes round the two lung apices: the cavity reaches just past
            # whichever apex a ray from the body axis crosses (and the mediastinum between them).
            rho2 = max(az - z, 0.0) / APEX_CURVATURE
            reach = np.full_like(th, 30.0)
            for cx in (-ax, ax):
                b = cx * np.cos(th) + ay * np.sin(th)
                disc = b * b - (cx * cx + ay * ay - rho2)
                reach = np.maximum(reach, np.where(disc > 0, b + np.sqrt(np.maximum(disc, 0)), 0))
            cav = np.minimum(cav, reach + 5.0)
        return skin, muscle_in, cav

    def dome(self, x, y) -> np.ndarray:
        """Height of the lung base (top of the diaphragm) over canonical (x, y)."""
        heights = []
        for dx, dy, dz in self.p.domes:
            ky = np.where(y > dy, 0.013, 0.0045)  # steeper behind: the posterior recesses go deepest
            fall = 0.009 * (x - dx) ** 2 + ky * (y - dy) ** 2
            heights.append(dz - 90.0 * (1 - np.exp(-fall / 90.0)))  # the sulci bottom out ~70 mm down
        return -smooth_min(-heights[0], -heights[1], 20.0)

    def apex_top(self, z: float):
        """``(window, top, grad)``: height of the lung top over the apex window, or ``None`` if far below."""
        ax, ay, az = self.p.apex
        if z < az - 120:
            return None
        w = self.window(-ax - 120, ax + 120, ay - 120, ay + 120)
        dx, dy = np.abs(self.X[:, w[1]]) - ax, self.Y[w[0]] - ay
        top = az - APEX_CURVATURE * (dx * dx + dy * dy)
        return w, top, 2 * APEX_CURVATURE * (np.abs(dx) + np.abs(dy)) * self.pixel + self.thickness

    def render(self, z: float, lungs_only: bool = False):
        """Render plane ``z`` on the crop: float32 ``(hu, lung, cavity)`` coverages (``hu`` is ``None`` if
        ``lungs_only``). ``cavity`` is the inside of the rib cage, where the hilar vessels may run."""
        px = self.pixel
        skin_t, muscle_t, cav_t = self.outlines(z)
        skin_r, cav_r = skin_t[self.tidx], cav_t[self.tidx]
        cav = coverage(self.r - cav_r, px)
        apex = self.apex_top(z)
        hu = None
        if not lungs_only:
            hu = self.background[self.crop].copy()
            paint(hu, coverage(self.r - skin_r, px), SKIN_HU)
            paint(hu, coverage(self.r - (skin_r - 1.8), px), FAT_HU)
            self._muscle(hu, z, muscle_t, cav_t)
            paint(hu, coverage(self.r - (cav_r - 2.5), px), FAT_HU)
            if apex is not None:  # above the lung tops: the soft tissue of the thoracic inlet and neck
                w, top, grad = apex
                neck = np.clip(0.5 + (z - top - 6) / grad, 0, 1) * cav[w]
                paint(hu[w], neck, MUSCLE_HU - 5)
        base = self._abdomen(hu, z, cav)
        envelope = self._mediastinum(hu, z, base)
        lung = cav * coverage(-envelope, px)
        if base is not None:
            lung[base[0]] *= 1 - base[1]
        if apex is not None:
            w, top, grad = apex
            tip = np.zeros(self.shape, dtype=F32)
            tip[w] = np.clip(0.5 + (top - z) / grad, 0, 1)
            lung *= tip
        if lungs_only:
            return None, lung, cav
        self._bones(hu, z, cav_r, cav_t)
        field = LUNG_HU + 80.0 * np.clip((self.Y + 20) / 80, 0, 1) ** 2
        field = field + 14.0 * self.lung_texture.slice(z)
        paint(hu, lung, field)
        self._fissures(hu, z, lung)
        return hu, lung, cav

    def _fissures(self, hu, z: float, lung) -> None:
        """Interlobar fissures: two pleural layers, a sheet far thinner than a voxel, so a faint line
        whose strength is the sheet's share of each voxel it crosses (fainter on thick slices)."""
        sheet = 0.35  # mm
        for (_, _, n, _), d in zip(FISSURES, fissure_distances(self.X, self.Y, z), strict=True):
            extent = (abs(n[0]) + abs(n[1])) * self.pixel + abs(n[2]) * self.thickness
            a = np.abs(d)
            share = np.minimum(extent / 2, a + sheet / 2) - np.maximum(-extent / 2, a - sheet / 2)
            paint(hu, np.clip(share / extent, 0, 1) * lung, FISSURE_HU)

    def _muscle(self, hu, z: float, muscle_t, cav_t) -> None:
        """Chest-wall muscle, fat planes between its layers where it is thick, and the axillary fat."""
        paint(hu, coverage(self.r - muscle_t[self.tidx], self.pixel), MUSCLE_HU)
        th = self.theta_tab
        depth = muscle_t - cav_t
        front, back = _angle_from(th, -np.pi / 2), _angle_from(th, np.pi / 2)
        # Pectoralis major over minor in front; trapezius and latissimus over the deep back muscles.
        sector = np.exp(-((front / 0.85) ** 4)) + np.exp(-(((back - 0.8) / 0.3) ** 2))
        fraction = 0.55 + 0.12 * np.sin(3 * th)
        plane_t = np.where((depth > 24.0) & (sector > 0.3), cav_t + 9.0 + fraction * (depth - 9.0), 1e4)
        d = np.abs(self.r - plane_t[self.tidx]) - 0.8
        paint(hu, coverage(d, self.pixel), FAT_HU + 20)
        # Arms raised: a lens of fat in each armpit, between chest wall and shoulder, widest mid-way up.
        axilla = float(np.sqrt(max(0.0, 1 - ((z - 224.0) / 44.0) ** 2)))
        if axilla > 0:
            side = np.minimum(_angle_from(th, 0.0), _angle_from(th, np.pi))[self.tidx]
            mid = (cav_t + 12.0 + 0.45 * (depth - 12.0))[self.tidx]
            half = 0.28 * depth[self.tidx]
            u = np.clip((self.r - mid) / half, -1, 1)
            d_angle = (side - 0.42 * axilla * np.sqrt(1 - u * u)) * self.r
            d = np.maximum(d_angle, np.abs(self.r - mid) - half)
            paint(hu, coverage(d, self.pixel), FAT_HU + 10)

    def _abdomen(self, hu, z: float, cav: np.ndarray):
        """Diaphragm and upper abdomen below the domes; returns ``(window, below-dome coverage)``."""
        p, px = self.p, self.pixel
        if z > max(d[2] for d in p.domes) + 8:
            return None
        w = self.window(-150, 150, -115, 95)
        x, y = self.X[:, w[1]], self.Y[w[0]]
        height = self.dome(x, y)
        gy, gx = np.gradient(height, axis=(0, 1))
        grad = np.abs(gx) + np.abs(gy) + self.thickness  # dome height changes px-wise; z blurs by th
        below = np.clip(0.5 + (height - z) / grad, 0, 1).astype(F32)
        if hu is None:
            return w, below
        c = cav[w]
        organs = np.clip(0.5 + (height - 5 - z) / grad, 0, 1) * c
        h = hu[w]
        paint(h, below * c, MUSCLE_HU)  # the diaphragm: a 5 mm muscle sheet under the lung bases
        paint(h, organs, FAT_HU)
        grain = self.grain[: h.shape[0], : h.shape[1]]
        # The liver fills the right upper quadrant; its left lobe reaches across in front.
        left_edge = -12 + 60 / (1 + np.exp((y + 15 + 0.3 * (z - 40)) / 14))
        paint(h, coverage(x - left_edge, px) * organs, LIVER_HU + 3 * grain)
        # Stomach: the air rises to the front (patient supine), with a flat air-fluid level.
        q = np.sqrt(((x - 58) / 40) ** 2 + ((y + 18) / 44) ** 2 + ((z - 48) / 36) ** 2)
        d = (q - 1) * 36
        paint(h, coverage(d, px) * organs, MUSCLE_HU)
        inside = coverage(d + 3, px) * organs
        paint(h, inside, GASTRIC_HU + 6 * grain)
        paint(h, inside * coverage(y + 34, px), AIR_HU)
        q = np.sqrt(((x - 84) / 22) ** 2 + ((y - 48) / 42) ** 2 + ((z - 52) / 42) ** 2)
        paint(h, coverage((q - 1) * 22, px) * organs, SPLEEN_HU)
        return w, below

    def _mediastinum(self, hu, z: float, base):
        """Heart, great vessels and airways; returns the envelope's signed distance (mm, + outside)."""
        p, px, th = self.p, self.pixel, self.thickness
        rows, cols = self.med
        x, y = self.X[:, cols], self.Y[rows]
        envelope = np.full(self.shape, 1e3, dtype=F32)
        env = envelope[rows, cols]
        # Keeps the two lungs apart (the anterior junction line); low down, the pericardial fat pad.
        env[:] = np.abs(x) - 2.5
        pad = float(np.interp(z, [50, 90, 125], [34, 24, 0]))
        if pad > 0:
            rho = np.sqrt((x / pad) ** 2 + ((y + 88) / (1.8 * pad)) ** 2)
            env[:] = smooth_min(env, (rho - 1) * pad, 6.0)
        sw = self.window(*skeleton.spine_window(p.spine, z))
        env_s = envelope[sw]
        env_s[:] = smooth_min(
            env_s, skeleton.spine_envelope(p.spine, z, self.X[:, sw[1]], self.Y[sw[0]]) - 3.0, 6.0
        )
        painting = hu is not None
        # Per kind, the union of its tubes as distance over blur width (bone: distance in mm).
        kinds = {k: np.full(self.shape, 1e3, dtype=F32) for k in ("vessel", "wall", "lumen", "bone")}
        for tube in p.tubes:
            outer = tube.radius + tube.wall
            for p0, p1 in zip(tube.points[:-1], tube.points[1:], strict=True):
                box = segment_box(p0, p1, z, outer + ENVELOPE_MARGIN + ENVELOPE_SMOOTH)
                win = box and self.window(*box)
                if win is None:
                    continue
                d, _ = segment_distance_2d(self.X[:, win[1]], self.Y[win[0]], z, p0, p1)
                if tube.kind != "bone":  # the clavicles lie in the chest wall, outside the cavity
                    e = envelope[win]
                    e[:] = smooth_min(e, d - outer - ENVELOPE_MARGIN, ENVELOPE_SMOOTH)
                if not painting:
                    continue
                v = p1 - p0
                tilt = float(np.sqrt(max(0.0, 1 - v[2] ** 2 / float(v @ v))))
                width = float(np.hypot(px, 0.6 * th * tilt))
                if tube.kind == "bone":
                    np.minimum(kinds["bone"][win], d - outer, out=kinds["bone"][win])
                    continue
                outside = kinds["vessel" if tube.kind == "vessel" else "wall"][win]
                np.minimum(outside, (d - outer) / width, out=outside)
                if tube.kind == "airway" and tube.radius > 0:
                    lumen = kinds["lumen"][win]
                    np.minimum(lumen, (d - tube.radius) / width, out=lumen)
        self._heart(hu, z, envelope, base)
        if painting:
            h = hu[rows, cols]
            for kind, value in (("vessel", BLOOD_HU), ("wall", WALL_HU), ("lumen", AIR_HU)):
                paint(h, np.clip(0.5 - kinds[kind][rows, cols], 0, 1), value)
            bone = kinds["bone"][rows, cols]
            paint(h, coverage(bone, px), skeleton.CORTEX_HU)
            paint(h, coverage(bone + skeleton.CORTEX_MM, px), skeleton.MARROW_HU)
        return envelope

    def _heart(self, hu, z: float, envelope, base) -> None:
        """Pericardium, epicardial fat (thicker in the grooves) and the heart itself, on the diaphragm."""
        centre, axes, semi = self.p.heart
        ra_centre, ra_semi = self.p.atrium
        extent = np.sqrt(np.sum((axes * semi[:, None]) ** 2, axis=0))
        lo = np.minimum(centre - extent, ra_centre - ra_semi) - 4
        hi = np.maximum(centre + extent, ra_centre + ra_semi) + 4
        if not lo[2] <= z <= hi[2]:
            return
        win = self.window(lo[0], hi[0], lo[1], hi[1])
        x, y = self.X[:, win[1]], self.Y[win[0]]
        d, nz = ellipsoid_distance_2d(x, y, z, centre, self.p.heart_matrix)
        d_ra, nz_ra = ellipsoid_distance_2d(x, y, z, ra_centre, np.diag(1.0 / ra_semi**2))
        nz = np.where(d_ra < d, nz_ra, nz)
        d = smooth_min(d, d_ra, 10.0)
        e = envelope[win]
        e[:] = smooth_min(e, d - ENVELOPE_MARGIN, ENVELOPE_SMOOTH)
        if hu is None:
            return
        width = self.pixel + (self.thickness - self.pixel) * nz
        rel = np.stack(np.broadcast_arrays(x - centre[0], y - centre[1], np.full_like(x, z - centre[2])))
        along = np.tensordot(axes[0], rel, axes=1) / semi[0]  # -1 at the base, +1 at the apex
        across = np.tensordot(axes[2], rel, axes=1) / semi[2]
        fat = 2.0 + 8.0 * np.exp(-(((along + 0.3) / 0.12) ** 2)) + 5.0 * np.exp(-((across / 0.1) ** 2))
        resting = 1.0
        if base is not None:  # the heart sits on the diaphragm: flatten what would dip below it
            below = np.zeros(self.shape, dtype=F32)
            below[base[0]] = base[1]
            resting = 1 - below[win]
        h = hu[win]
        paint(h, coverage(d, width) * resting, SKIN_HU)  # pericardium
        paint(h, coverage(d + 1.2, width) * resting, FAT_HU)
        paint(h, coverage(d + 1.2 + fat, width) * resting, BLOOD_HU)

    def _bones(self, hu, z: float, cav_r, cav_t) -> None:
        """Ribs, scapulae, the vertebra at this level and the sternum."""
        p, px, th = self.p, self.pixel, self.thickness
        grain = self.grain[int(z * 7.3) % 32 :][:, int(z * 3.1) % 32 :][: self.shape[0], : self.shape[1]]
        skeleton.paint_ribs(hu, p.ribs, z, self.r, self.theta, cav_r, px, th)
        skeleton.paint_scapulae(hu, z, self.r, self.theta, cav_r, px, th)
        sw = self.window(*skeleton.spine_window(p.spine, z))
        skeleton.paint_spine(hu[sw], p.spine, z, self.X[:, sw[1]], self.Y[sw[0]], px, th, 45 * grain[sw])
        front = -float(cav_t[int(0.25 * N_THETA)])  # inner chest wall at the anterior midline
        w = self.window(-30, 30, front - 16, front + 1)
        if w is not None:
            skeleton.paint_sternum(hu[w], z, self.X[:, w[1]], self.Y[w[0]], front, px, 45 * grain[w])


def _window(xs, ys, x0, x1, y0, y1):
    """Row and column slices of ascending grid coordinates inside bounds (``None`` if empty)."""
    c0, c1 = np.searchsorted(xs, x0), np.searchsorted(xs, x1, side="right")
    r0, r1 = np.searchsorted(ys, y0), np.searchsorted(ys, y1, side="right")
    return (slice(r0, r1), slice(c0, c1)) if c1 > c0 and r1 > r0 else None


def _table(hu, xs, ys, top: float, pixel: float) -> None:
    """The scanner table: a curved carbon-fibre shell around a foam core, under the patient."""
    w = _window(xs, ys, -260, 260, top - 40, top + 45)
    if w is None:
        return
    x, y = xs[None, w[1]], ys[w[0], None]
    depth = y - (top - 0.0004 * x * x)  # mm below the table's upper surface
    inside = coverage(np.abs(x) - 240, pixel)
    paint(hu[w], coverage(np.abs(depth - 18) - 18, pixel) * inside, TABLE_SHELL_HU)
    paint(hu[w], coverage(np.abs(depth - 18) - 15, pixel) * inside, TABLE_CORE_HU)
