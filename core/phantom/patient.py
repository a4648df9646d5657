"""One phantom patient: the proportions and the fixed mediastinal anatomy, in a canonical adult frame.

The canonical frame is in mm: x towards the patient's left, y posterior, z superior, the body axis at
x = y = 0. The lungs reach from about z = 15 (the posterior recesses) to z = 272 (the apices); the
carina is at z = 190, the diaphragm domes near z = 94 (right) and 81 (left), T1 at the top of the spine
near z = 270. ``make_patient`` varies every proportion by a few percent from the seed; the great vessels
and airways are fixed polylines (moved with the heart), the lung vessel trees are grown elsewhere
(``core.phantom.vessels``) from the roots given here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.phantom import skeleton
from core.phantom.shapes import ellipsoid_matrix, orthonormal_axes

APEX_CURVATURE = 0.011  # 1/mm: the lung tops are paraboloids, 52 mm in radius 30 mm below the apex

# Mediastinal and abdominal tubes (canonical mm): kind, radius (lumen for airways), wall, points.
_TUBES = [
    ("vessel", 14.0, 0, [(-2, -34, 138), (-7, -36, 175), (-5, -33, 205)]),  # ascending aorta
    ("vessel", 12.0, 0, [(-5, -33, 205), (2, -26, 219), (22, -13, 226), (30, 6, 221), (27, 20, 207)]),
    ("vessel", 11.5, 0, [(27, 20, 207), (25, 22, 150), (18, 25, 95), (8, 27, 45), (3, 28, -60)]),
    ("vessel", 6.5, 0, [(2, -26, 220), (-10, -23, 250), (-24, -18, 320)]),  # brachiocephalic trunk
    ("vessel", 4.5, 0, [(12, -19, 224), (13, -14, 320)]),  # left common carotid
    ("vessel", 5.0, 0, [(25, -4, 225), (30, 0, 262), (52, 8, 284), (90, 12, 300)]),  # left subclavian
    ("vessel", 10.0, 0, [(-31, -25, 142), (-29, -24, 200), (-25, -26, 230)]),  # superior vena cava
    ("vessel", 7.0, 0, [(-25, -26, 230), (-36, -20, 270), (-46, -15, 330)]),  # right brachiocephalic v.
    ("vessel", 6.0, 0, [(-25, -26, 229), (5, -42, 236), (36, -38, 250), (56, -25, 330)]),  # left br. v.
    ("vessel", 12.5, 0, [(18, -55, 138), (24, -42, 170), (24, -24, 187)]),  # pulmonary trunk
    ("vessel", 9.5, 0, [(24, -24, 187), (40, -10, 193), (55, 2, 187)]),  # left pulmonary artery
    ("vessel", 9.5, 0, [(24, -24, 187), (2, -18, 185), (-25, -13, 181), (-46, -6, 176)]),  # right PA
    ("vessel", 7.0, 0, [(4, 4, 140), (-24, 5, 145), (-44, 8, 147)]),  # right pulmonary veins
    ("vessel", 7.0, 0, [(10, 4, 140), (34, 6, 145), (50, 8, 149)]),  # left pulmonary veins
    ("vessel", 12.0, 0, [(-22, 12, -60), (-20, 8, 60), (-22, -2, 98)]),  # inferior vena cava
    ("vessel", 4.0, 0, [(-10, 34, -20), (-12, 34, 178), (-18, 16, 198), (-27, -18, 202)]),  # azygos
    ("airway", 8.5, 1.8, [(0, -12, 330), (0, -8, 250), (1, 0, 196), (1, 2, 190)]),  # trachea
    ("airway", 6.5, 1.5, [(1, 2, 190), (-22, 6, 180), (-40, 8, 174)]),  # right main bronchus
    ("airway", 6.0, 1.5, [(1, 2, 190), (25, 8, 182), (45, 12, 172)]),  # left main bronchus
    ("airway", 1.6, 5.5, [(5, 14, 330), (5, 15, 200), (2, 11, 150)]),  # oesophagus, a little air
    ("airway", 0.0, 7.0, [(2, 11, 150), (6, 8, 110), (24, -2, 82), (46, -12, 66)]),  # lower oesophagus
    ("airway", 14.0, 2.0, [(40, -76, 32), (80, -56, 44), (96, -22, 40), (90, 15, 20), (86, 20, -40)]),
    ("bone", 6.0, 0, [(-20, -84, 254), (-70, -82, 262), (-122, -58, 272)]),  # right clavicle
    ("bone", 6.0, 0, [(20, -84, 254), (70, -82, 262), (122, -58, 272)]),  # left clavicle
]
# Where the lung vessel trees and bronchi start: the ends of the pulmonary arteries, veins, main bronchi.
ROOTS = {
    "artery": ((-46, -6, 176), (55, 2, 187)),
    "vein": ((-44, 8, 147), (50, 8, 149)),
    "bronchus": ((-40, 8, 174), (45, 12, 172)),
}
# Interlobar fissures as planes ``n . p = c`` (unit n, canonical mm), each in one lung (-1 right, +1 left):
# the oblique fissures fall from the back at T4-T5, past the hila, to the front of the diaphragm, and on
# axial slices run from the hilum out and forward to the side wall; the right horizontal fissure runs
# forward from the oblique one at the level of the fourth rib.
FISSURES = (
    ("right oblique", -1, (-0.33, 0.66, -0.676), -93.55),
    ("left oblique", 1, (0.33, 0.66, -0.676), -96.9),
    ("right horizontal", -1, (0.0, -0.0995, 0.995), 171.1),
)


def fissure_distances(x, y, z) -> list[np.ndarray]:
    """Signed distance (mm) of canonical points to each fissure in ``FISSURES`` (inf where it is absent).

    The horizontal fissure only exists in front of the right oblique one (between upper and middle lobes).
    """
    out: list[np.ndarray] = []
    for name, side, (nx, ny, nz), c in FISSURES:
        keep = x * side > 0
        if name == "right horizontal":
            keep = keep & (out[0] < 0)
        out.append(np.where(keep, nx * x + ny * y + nz * z - c, np.inf))
    return out


@dataclass(frozen=True)
class Tube:
    """A polyline tube of constant radius (mm); airways have an air lumen of ``radius`` in a ``wall``."""

    kind: str  # "vessel" (blood), "airway" (wall and air lumen; also oesophagus and colon) or "bone"
    points: np.ndarray  # (n, 3) canonical mm
    radius: float
    wall: float


@dataclass(frozen=True)
class Patient:
    """One phantom individual's proportions (canonical mm)."""

    body: tuple[float, float, float]  # half-width, front and back half-depths of the skin at mid-chest
    fat: float  # subcutaneous fat thickness
    apex: tuple[float, float, float]  # |x|, y and z of the lung apices
    domes: tuple[tuple[float, float, float], tuple[float, float, float]]  # right, left dome tops (x, y, z)
    heart: tuple[np.ndarray, np.ndarray, np.ndarray]  # ventricles: centre, axes (rows), semi-axes
    atrium: tuple[np.ndarray, np.ndarray]  # right atrium, bulging right of the spine: centre, semi-axes
    spine: skeleton.Spine
    ribs: skeleton.Ribs
    tubes: tuple[Tube, ...]

    @property
    def heart_matrix(self) -> np.ndarray:
        return ellipsoid_matrix(self.heart[1], tuple(self.heart[2]))


def make_patient(rng: np.random.Generator) -> Patient:
    """Draw one plausible adult: a few percent of variation in every proportion."""

    def vary(value: float, rel: float) -> float:
        return float(value * (1 + rel * np.clip(rng.standard_normal(), -2, 2)))

    width, depth = vary(1.0, 0.04), vary(1.0, 0.05)
    body = (160 * width, 112 * depth, 108 * depth)
    dome_r = vary(94.0, 0.05)
    domes = ((-55.0, -8.0, dome_r), (58.0, -8.0, dome_r - vary(13.0, 0.2)))
    heart_scale = vary(1.0, 0.05)
    shift = rng.normal(0.0, 2.0, size=3)
    centre = np.array([28.0, -30.0, 116.0]) + shift
    axes = orthonormal_axes([0.66, -0.52, -0.54])  # long axis: base (back, right, up) to apex
    semi = np.array([68.0, 50.0, 44.0]) * heart_scale
    atrium = (np.array([-22.0, -16.0, 120.0]) + shift, np.array([26.0, 28.0, 34.0]) * heart_scale)
    spine = skeleton.Spine(body_y=38.0 * depth, pitch=vary(24.0, 0.03), top_disc_z=vary(276.0, 0.01))
    tubes = tuple(
        Tube(kind, np.asarray(points, dtype=np.float64) + shift, radius, wall)
        for kind, radius, wall, points in _TUBES
    )
    apex = (46.0, 14.0, vary(272.0, 0.015))
    return Patient(
        body, rng.uniform(8.0, 22.0), apex, domes, (centre, axes, semi), atrium, spine,
        skeleton.make_ribs(spine, rng), tubes,
    )  # fmt: skip
