"""Register a prior CT study to the current one: rigid, then affine, on the lungs (SimpleITK).

Both volumes are reduced once to one voxel every ~3 mm (the voxels ``LungMap`` of
``core.imaging.location`` judges, cropped to the box round the lungs), HU clipped to the lung range
(bone would dominate a difference), and compared only inside the current study's lungs (its
``LungMap`` lungs grown by two blocks, so the lung borders count). The current
study is ITK's fixed image, so the transform found maps current LPS mm to prior LPS mm; it starts
from the difference of the lungs' centroids and runs rigid (Euler) on two levels (shrink 4, then 2),
then affine on the full ~3 mm copy. ``Registration`` holds the result as a 4x4 matrix both ways,
with ``lung_surface_mm``: the mean distance (mm) from the current lungs' surface, carried into the
prior, to the prior lungs' surface (before: the same without the registration).

``refine_point`` then moves a propagated nodule centre to where a patch of the prior around it fits
the current study best (normalised cross-correlation over a small search window, sub-voxel peak).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.imaging.location import LungMap
from core.util.cancellation import Cancelled, check
from core.volume import CTVolume

SCHEMA = "mtmr-reader/registration/1"
HU_RANGE = (-1000.0, 100.0)  # lung, vessels and the borders; bone would dominate a plain difference
MASK_GROW_BLOCKS = 2
BOX_MARGIN_BLOCKS = 3
MIN_BLOCKS = 4
RIGID_LEVELS = ((4, 2.0), (2, 1.0))  # shrink factor, smoothing sigma in blocks
AFFINE_LEVELS = ((1, 0.0),)
ITERATIONS = 60
SAMPLES = 10000
PATCH_MM = 24.0  # refine_point: the prior patch's side
SEARCH_MM = 8.0  # ... and how far it is slid each way
PATCH_HU = (-1000.0, 300.0)
MIN_SCORE = 0.5
REACH_MM = 100.0  # about a lung's reach from the lungs' centre


@dataclass(frozen=True)
class Registration:
    """Current LPS mm -> prior LPS mm (``current_to_prior``) and back, and how well the lungs fit."""

    current_to_prior: np.ndarray  # 4x4
    lung_surface_mm: float
    lung_surface_before_mm: float
    seconds: float = 0.0

    def __post_init__(self) -> None:
        matrix = np.array(self.current_to_prior, dtype=np.float64)
        if (
            matrix.shape != (4, 4)
            or not np.all(np.isfinite(matrix))
            or not np.allclose(matrix[3], [0, 0, 0, 1])
        ):
            raise ValueError("a registration needs a finite 4x4 affine matrix")
        if abs(np.linalg.det(matrix[:3, :3])) < 1e-3:
            raise ValueError("a registration's matrix is singular")
        for name in ("lung_surface_mm", "lung_surface_before_mm", "seconds"):
            if not np.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"a registration's {name} must be finite and >= 0")
        matrix.flags.writeable = False
        object.__setattr__(self, "current_to_prior", matrix)

    @property
    def prior_to_current(self) -> np.ndarray:
        return np.linalg.inv(self.current_to_prior)

    def to_prior(self, points_mm) -> np.ndarray:
        """Current LPS mm ``(..., 3)`` -> prior LPS mm."""
        return _apply(self.current_to_prior, points_mm)

    def to_current(self, points_mm) -> np.ndarray:
        """Prior LPS mm ``(..., 3)`` -> current LPS mm."""
        return _apply(self.prior_to_current, points_mm)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "current_to_prior": [[float(v) for v in row] for row in self.current_to_prior],
            "lung_surface_mm": round(float(self.lung_surface_mm), 4),
            "lung_surface_before_mm": round(float(self.lung_surface_before_mm), 4),
            "seconds": round(float(self.seconds), 3),
        }

    @classmethod
    def from_dict(cls, data) -> Registration:
        """The inverse of ``to_dict``; ``ValueError`` says what is wrong with a damaged one."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError(f"not a registration (schema {SCHEMA!r} expected)")
        try:
            matrix = np.array(data["current_to_prior"], dtype=np.float64)
            values = [float(data[k]) for k in ("lung_surface_mm", "lung_surface_before_mm")]
            seconds = float(data.get("seconds", 0.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"a damaged registration ({type(exc).__name__}: {exc})") from None
        return cls(matrix, *values, seconds)


def _apply(matrix: np.ndarray, points_mm) -> np.ndarray:
    points = np.asarray(points_mm, dtype=np.float64)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


@dataclass(frozen=True, eq=False)
class _Lungs:
    """One study reduced for registration: block-mean image, lung mask, lung surface points (mm)."""

    image: object  # sitk.Image, float32, clipped HU
    mask: object  # sitk.Image, uint8: the lungs grown by MASK_GROW_BLOCKS
    mask_count: int
    distance: np.ndarray | None  # (z, y, x) distance (mm) to the lung surface on the block grid (moving)
    surface_mm: np.ndarray  # (n, 3) LPS
    centroid_mm: np.ndarray
    to_index: np.ndarray  # 4x4: LPS mm -> block index (x, y, z)


def _reduce(volume: CTVolume, name: str, with_distance: bool, lung_map: LungMap | None) -> _Lungs:
    import SimpleITK as sitk
    from scipy import ndimage

    if lung_map is None:
        lung_map = LungMap(volume)
    elif lung_map.volume is not volume:
        raise ValueError(f"{name}: the lung map given was found on another volume")
    if not lung_map.found:
        raise ValueError(
            f"{name}: no lungs found ({lung_map.lung_ml:.0f} ml of air inside the body), so it cannot be "
            "registered; is it a chest CT?"
        )
    steps = np.array(lung_map.steps, dtype=np.float64)  # (x, y, z)
    grown = ndimage.binary_dilation(lung_map.lungs, iterations=MASK_GROW_BLOCKS)
    # only the box round the grown lungs (and a margin): samples outside the mask cost as much as inside
    box = [np.flatnonzero(grown.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    low = np.array([max(int(b[0]) - BOX_MARGIN_BLOCKS, 0) for b in box])  # (z, y, x)
    high = np.array(
        [min(int(b[-1]) + BOX_MARGIN_BLOCKS + 1, n) for b, n in zip(box, grown.shape, strict=True)]
    )
    crop = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
    grown, lungs = grown[crop], lung_map.lungs[crop]
    if min(grown.shape) < MIN_BLOCKS:  # ITK's smoothing needs 4 voxels along every axis
        span = " x ".join(
            f"{n * v:.0f}" for n, v in zip(grown.shape[::-1], np.array(volume.spacing) * steps, strict=True)
        )
        raise ValueError(
            f"{name}: its lungs span too little ({span} mm) to be registered; is the study whole?"
        )
    # one voxel per block (the voxels LungMap judged): a block mean costs seconds on 2 cores, and the
    # pyramid smooths anyway
    start = low * steps[::-1].astype(int)
    small = volume.array[
        start[0] :: lung_map.steps[2], start[1] :: lung_map.steps[1], start[2] :: lung_map.steps[0]
    ][: grown.shape[0], : grown.shape[1], : grown.shape[2]].astype(np.float32)
    np.clip(small, *HU_RANGE, out=small)
    affine = volume.affine.copy()  # cropped block index (x, y, z) -> LPS mm
    affine[:3, 3] = volume.voxel_to_mm(start[::-1])
    affine[:3, :3] = affine[:3, :3] * steps
    image = sitk.GetImageFromArray(small)
    mask = sitk.GetImageFromArray(grown.astype(np.uint8))
    for item in (image, mask):
        item.SetSpacing(tuple(float(v) for v in np.array(volume.spacing) * steps))
        item.SetOrigin(tuple(float(v) for v in affine[:3, 3]))
        item.SetDirection(tuple(float(v) for v in volume.direction.ravel()))
    edge = lungs & ~ndimage.binary_erosion(lungs)
    surface = np.argwhere(edge)[:, ::-1]  # (x, y, z) block index
    to_mm = lambda xyz: xyz @ affine[:3, :3].T + affine[:3, 3]  # noqa: E731
    centroid = to_mm(np.argwhere(lungs)[:, ::-1].mean(axis=0))
    distance = None
    if with_distance:  # to the nearest surface block, in mm
        edges = sitk.GetImageFromArray(edge.astype(np.uint8))
        edges.CopyInformation(image)
        # a view of the map's buffer: the map must outlive it (a temporary was freed under the view and
        # crashed the comparison thread now and then), so it is held until the copy is made
        signed = sitk.SignedMaurerDistanceMap(edges, False, False, True)
        distance = np.abs(sitk.GetArrayViewFromImage(signed))
        del signed
    return _Lungs(image, mask, int(grown.sum()), distance, to_mm(surface), centroid, np.linalg.inv(affine))


def _surface_distance(fixed: _Lungs, moving: _Lungs, current_to_prior: np.ndarray) -> float:
    """Mean distance (mm) from the current lung surface, carried into the prior, to the prior's."""
    from scipy import ndimage

    points = _apply(moving.to_index @ current_to_prior, fixed.surface_mm)[:, ::-1].T  # (z, y, x) rows
    return float(np.mean(ndimage.map_coordinates(moving.distance, points, order=1, mode="nearest")))


def _run(
    method_levels, transform, fixed: _Lungs, moving: _Lungs, report: Callable[[], None], cancelled
) -> None:
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    method.SetMetricFixedMask(fixed.mask)
    method.SetMetricSamplingStrategy(method.RANDOM)
    # about SAMPLES points inside the mask at every level; seeded: the same pair, the same result
    shares = [min(1.0, SAMPLES * shrink**3 / max(fixed.mask_count, 1)) for shrink, _ in method_levels]
    method.SetMetricSamplingPercentagePerLevel(shares, 20261206)
    method.SetInterpolator(sitk.sitkLinear)
    # central differences at each sample: a gradient image per level costs ten times more here
    method.SetMetricUseFixedImageGradientFilter(False)
    method.SetMetricUseMovingImageGradientFilter(False)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=0.01, numberOfIterations=ITERATIONS, relaxationFactor=0.6
    )
    # a parameter's scale: the squared shift (mm) a unit change makes at REACH_MM from the centre
    # (set by hand: ITK's estimator samples the whole image again at every level, seconds on 2 cores)
    rotation = REACH_MM**2
    if transform.GetNumberOfParameters() == 6:  # Euler: three angles (rad), three shifts (mm)
        method.SetOptimizerScales([rotation] * 3 + [1.0] * 3)
    else:  # affine: nine matrix entries, three shifts
        method.SetOptimizerScales([rotation] * 9 + [1.0] * 3)
    method.SetShrinkFactorsPerLevel([s for s, _ in method_levels])
    method.SetSmoothingSigmasPerLevel([g for _, g in method_levels])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(transform, inPlace=True)

    stopped = []

    def on_iteration() -> None:
        if stopped:  # StopRegistration ends a level, not the levels after it
            method.StopRegistration()
            return
        report()
        if cancelled is not None and cancelled():
            stopped.append(True)
            method.StopRegistration()

    method.AddCommand(sitk.sitkIterationEvent, on_iteration)
    method.Execute(fixed.image, moving.image)
    if stopped:
        raise Cancelled()


def register(
    prior: CTVolume,
    current: CTVolume,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    names: Sequence[str] | None = None,
    lung_maps: Sequence[LungMap | None] = (None, None),
) -> Registration:
    """Register ``prior`` to ``current`` (see the module docstring).

    ``progress(done, total)`` is told about every optimiser iteration; ``cancelled()`` is asked as
    often and a True answer raises ``Cancelled`` (nothing is returned, nothing kept). ``ValueError``
    when a study shows no lungs, naming it by ``names`` (prior, current), else by its role and the
    file or folder it was read from. ``lung_maps`` (prior, current): the studies' ``LungMap`` where
    the caller has them already (the viewer keeps one per study), which saves finding the lungs again.
    """
    import time

    import SimpleITK as sitk

    start = time.perf_counter()
    total = ITERATIONS * (len(RIGID_LEVELS) + len(AFFINE_LEVELS)) + 3
    done = [0]

    def report(step: int = 1) -> None:
        done[0] = min(done[0] + step, total - 1)
        if progress is not None:
            progress(done[0], total)

    check(cancelled)
    if names is None:
        names = [
            f"{role} study" + (f" {v.source}" if v.source else "")
            for role, v in (("prior", prior), ("current", current))
        ]
    fixed = _reduce(current, names[1], with_distance=False, lung_map=lung_maps[1])
    report()  # finding each study's lungs takes a good part of the whole
    check(cancelled)
    moving = _reduce(prior, names[0], with_distance=True, lung_map=lung_maps[0])
    report()
    rigid = sitk.Euler3DTransform()
    rigid.SetCenter(tuple(float(v) for v in fixed.centroid_mm))
    rigid.SetTranslation(tuple(float(v) for v in moving.centroid_mm - fixed.centroid_mm))
    _run(RIGID_LEVELS, rigid, fixed, moving, report, cancelled)
    affine = sitk.AffineTransform(3)
    affine.SetCenter(rigid.GetCenter())
    affine.SetMatrix(rigid.GetMatrix())
    affine.SetTranslation(rigid.GetTranslation())
    _run(AFFINE_LEVELS, affine, fixed, moving, report, cancelled)
    matrix = np.eye(4)
    matrix[:3, :3] = np.array(affine.GetMatrix()).reshape(3, 3)
    centre = np.array(affine.GetCenter())
    matrix[:3, 3] = np.array(affine.GetTranslation()) + centre - matrix[:3, :3] @ centre
    result = Registration(
        matrix,
        _surface_distance(fixed, moving, matrix),
        _surface_distance(fixed, moving, np.eye(4)),
        time.perf_counter() - start,
    )
    if progress is not None:
        progress(total, total)
    return result


@dataclass(frozen=True)
class RefinedPoint:
    """A prior point carried into the current study: by the registration, then by patch correlation."""

    current_mm: tuple[float, float, float]  # the refined position (the propagated one when not refined)
    propagated_mm: tuple[float, float, float]  # where the registration put it
    score: float  # normalised cross-correlation at the best offset (-1..1)
    refined: bool  # False: no clear peak inside the search window, so the propagated point is kept


def refine_point(
    prior_vol: CTVolume,
    current_vol: CTVolume,
    prior_point_mm: Sequence[float],
    transform: Registration,
    patch_mm: float = PATCH_MM,
    search_mm: float = SEARCH_MM,
) -> RefinedPoint:
    """Refine where ``prior_point_mm`` lies in the current study.

    A patch of ``patch_mm`` of the prior round the point is resampled onto the current grid through
    ``transform`` and slid over the current study up to ``search_mm`` each way (one voxel steps,
    normalised cross-correlation by FFT, a parabola through the peak for the sub-voxel part). A peak
    below ``MIN_SCORE`` or on the window's edge keeps the propagated point (``refined`` False).
    ``ValueError`` for a point that is not finite or lies outside either study.
    """
    from scipy import ndimage

    point = np.asarray(prior_point_mm, dtype=np.float64)
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        raise ValueError(f"a prior point must be three finite LPS coordinates in mm, not {prior_point_mm!r}")
    if not prior_vol.contains_mm(point):
        raise ValueError(f"point {tuple(round(float(v), 1) for v in point)} mm is outside the prior study")
    propagated = transform.to_current(point)
    if not current_vol.contains_mm(propagated):
        raise ValueError(
            f"point {tuple(round(float(v), 1) for v in point)} mm of the prior is outside the current study"
        )
    spacing = np.array(current_vol.spacing)  # (x, y, z)
    half = np.ceil(patch_mm / 2 / spacing).astype(int)
    reach = np.ceil(search_mm / spacing).astype(int)
    centre = np.rint(current_vol.mm_to_voxel(propagated)).astype(int)
    offsets = np.stack(np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij"), axis=-1)
    grid_mm = current_vol.voxel_to_mm(centre + offsets)  # (x, y, z) patch positions in the current
    at_prior = prior_vol.mm_to_voxel(transform.to_prior(grid_mm))[..., ::-1]  # (z, y, x)
    template = ndimage.map_coordinates(
        prior_vol.array, np.moveaxis(at_prior, -1, 0), order=1, mode="nearest", output=np.float32
    ).transpose(2, 1, 0)  # (z, y, x)
    template = np.clip(template, *PATCH_HU)
    around = half + reach
    shape = np.array(current_vol.shape[::-1])
    low, high = centre - around, centre + around + 1
    pad = [(max(0, -a), max(0, b - n)) for a, b, n in zip(low, high, shape, strict=True)][::-1]
    box = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(low, high, shape, strict=True))[::-1]
    search = np.pad(current_vol.array[box].astype(np.float32), pad, mode="edge")
    np.clip(search, *PATCH_HU, out=search)
    template -= template.mean()
    norm = float(np.sqrt(np.sum(template**2)))
    ncc = _sliding_ncc(search, template, norm)
    peak = np.array(np.unravel_index(int(np.argmax(ncc)), ncc.shape))  # (z, y, x) in the window
    score = float(ncc[tuple(peak)])
    shift = peak - reach[::-1]
    kept = RefinedPoint(_point(propagated), _point(propagated), score, False)
    if norm < 1e-3 or score < MIN_SCORE or np.any(peak == 0) or np.any(peak == ncc.shape - np.array(1)):
        return kept
    fine = shift.astype(np.float64)
    for axis in range(3):  # parabola through the peak and its two neighbours
        before, after = peak.copy(), peak.copy()
        before[axis] -= 1
        after[axis] += 1
        a, b, c = ncc[tuple(before)], score, ncc[tuple(after)]
        curve = a - 2 * b + c
        if curve < 0:
            fine[axis] += float(np.clip(0.5 * (a - c) / curve, -0.5, 0.5))
    moved = propagated + current_vol.affine[:3, :3] @ fine[::-1]
    return RefinedPoint(_point(moved), _point(propagated), score, True)


def _sliding_ncc(search: np.ndarray, template: np.ndarray, norm: float) -> np.ndarray:
    """Normalised cross-correlation of the zero-mean ``template`` (its root sum of squares ``norm``)
    at every offset where it fits inside ``search``: circular FFT correlations, cut where they do not
    wrap round (scipy.fft: scipy.signal's import alone takes seconds)."""
    from scipy import fft

    size = search.shape
    valid = tuple(slice(0, n - t + 1) for n, t in zip(size, template.shape, strict=True))
    spectrum = fft.rfftn(search)

    def correlate(image_spectrum, kernel) -> np.ndarray:
        return fft.irfftn(image_spectrum * np.conj(fft.rfftn(kernel, size)), size)[valid]

    numerator = correlate(spectrum, template)
    ones = np.ones_like(template)
    sums = correlate(spectrum, ones)
    squares = correlate(fft.rfftn(search**2), ones)
    energy = np.maximum(squares - sums**2 / template.size, 0.0)
    return numerator / np.maximum(np.sqrt(energy) * norm, 1e-6)


def _point(values) -> tuple[float, float, float]:
    return tuple(float(v) for v in values)  # type: ignore[return-value]


__all__ = ["Cancelled", "RefinedPoint", "Registration", "refine_point", "register"]
