"""Grad-CAM (Selvaraju et al., ICCV 2017) for the malignancy output: where on one input slice the
trunk's last stage carried evidence for the model's own call, malignant or benign (the sign of the
malignant-minus-benign logit). Explaining only "malignant" made the map of a nodule scored benign
show the faint positive scraps around it, stretched to full colour, while the nodule itself argued
benign: a heat-map beside the nodule.

It shows where the model looked, not why it scored what it did, and it is coarse: the compact
model's last stage is 4x4 cells for a 64 px patch (12 mm per cell for a 48 mm fixed field of view;
for paper crops, as the demo model uses, a quarter of 1.25x the marker diameter). Each cell is
placed where its receptive field is centred: cell ``i`` of a stride-``S`` trunk whose convolutions
pad ``(k - 1) / 2`` looks at input pixel ``S * i`` (pixel centres), not at the middle of the
``S``-pixel block that a plain bilinear resize assumes (half a cell, 7.5 px of 64, too far down and
right). Patch and map are turned as the axial view shows the study (``core.imaging.mpr``). The model is left
exactly as found: no hooks, no gradients stored on its weights, no change to ``requires_grad`` or to
train/eval mode; it assumes ``model(x, d) == model.heads(flatten(trunk.pool(trunk.feature_maps(x))), d)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from core.imaging.mpr import plane
from core.model.inference import Predictor
from core.model.patches import extract_patches
from core.nodule.prediction import Marker
from core.volume import CTVolume

TARGET = "malignancy"
NOTE = (
    "Grad-CAM of the evidence for the model's call ({call}) on the trunk's last stage, upsampled to "
    "the patch: where the model looked, not proof of why it scored what it did"
)
ZERO_NOTE = (
    "Grad-CAM is zero everywhere on this slice: no region of the trunk's last stage argued for the "
    "model's call, so there is nothing to highlight"
)
ELSEWHERE_NOTE = (
    "; the map's centre of mass lies outside the marker circle: the model looked elsewhere, not at the nodule"
)
SIZE_NOTE = "; this model also reads the marker's diameter, which the map cannot show"
LUNG_WINDOW_HU = (-1350.0, 150.0)

# A jet-like colour map (dark blue, blue, cyan, yellow, red, dark red), linear between anchors.
_ANCHORS = np.array([0.0, 0.125, 0.375, 0.625, 0.875, 1.0])
_COLOURS = np.array(
    [[0.0, 0.0, 0.5], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.0, 0.0]]
)


@dataclass(frozen=True, eq=False)
class Explanation:
    patch: np.ndarray  # float32 (H, W): the input slice in the model's scale (-1..1), as the axial view
    heatmap: np.ndarray  # float32 (H, W) in 0..1, same size and orientation as the patch
    target: str  # "malignancy"
    slice_index: int  # which of the nodule's input slices (bottom to top)
    note: str  # what the heatmap shows, for every place it is displayed
    side_mm: float = 0.0  # how many mm the patch spans (paper crops scale with the marker)
    call: str = "malignant"  # the model's call whose evidence the map shows: "malignant" or "benign"
    marker_radius_px: float = 0.0  # the marker circle in patch pixels, centred on the patch
    centre_px: tuple[float, float] | None = None  # the map's centre of mass (row, col); None if all zero

    @property
    def on_nodule(self) -> bool:
        """Whether the map's centre of mass lies inside the marker circle (False for an empty map)."""
        if self.centre_px is None:
            return False
        middle = (self.heatmap.shape[0] - 1) / 2, (self.heatmap.shape[1] - 1) / 2
        return bool(np.hypot(*np.subtract(self.centre_px, middle)) <= self.marker_radius_px)


def explain(
    predictor: Predictor, volume: CTVolume, marker: Marker, slice_index: int | None = None
) -> Explanation:
    """Grad-CAM of one input slice of ``marker``'s nodule (default: the central one).

    Runs on the predictor's device. Raises ``ValueError`` for a marker outside the volume or a
    slice index out of range.
    """
    import torch

    config = predictor.patch_config
    try:
        patches = extract_patches(volume, marker.centre_mm, marker.diameter_mm, config)
    except ValueError as exc:
        raise ValueError(f"marker {marker.id}: {exc}") from exc
    count = len(patches)
    index = count // 2 if slice_index is None else int(slice_index)
    if not 0 <= index < count:
        raise ValueError(f"slice index {index} is out of range: the nodule spans {count} input slices")
    maps, gradients, margin = _maps_and_gradients(
        torch, predictor.model, predictor.device, patches[index : index + 1], marker.diameter_mm
    )
    call = "malignant" if margin >= 0 else "benign"
    if call == "benign":  # the evidence for the model's own call: d(benign - malignant)/d(maps)
        gradients = -gradients
    weights = gradients.mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1): each channel's importance
    cam = torch.relu((weights * maps).sum(dim=1))[0].double().cpu().numpy()  # (h, w)
    size = tuple(patches.shape[-2:])
    heatmap = upsample(cam, size, trunk_stride(predictor.model.trunk))
    peak = float(heatmap.max()) if np.all(np.isfinite(heatmap)) else 0.0
    side_mm = float(config.side_mm(marker.diameter_mm))
    patch, heatmap = (
        axial_display(volume, a) for a in (patches[index, patches.shape[1] // 2], heatmap)
    )  # the slice itself, turned as the axial view shows it
    centre = None
    if peak > 1e-12:
        heatmap = np.clip(heatmap / peak, 0.0, 1.0)
        rows, cols = np.indices(heatmap.shape)
        centre = tuple(float((heatmap * axis).sum() / heatmap.sum()) for axis in (rows, cols))
        note = NOTE.format(call=call)
    else:
        heatmap = np.zeros(size)
        note = ZERO_NOTE
    result = Explanation(
        patch=np.array(patch, dtype=np.float32),
        heatmap=np.array(heatmap, dtype=np.float32),
        target=TARGET,
        slice_index=index,
        note=note,
        side_mm=side_mm,
        call=call,
        marker_radius_px=marker.diameter_mm / 2 * size[-1] / side_mm,
        centre_px=centre,
    )
    if centre is not None and not result.on_nodule:
        note += ELSEWHERE_NOTE
    if getattr(predictor.model.config, "size_input", False):
        note += SIZE_NOTE
    return replace(result, note=note)


def trunk_stride(trunk) -> int:
    """How many input pixels one cell of the trunk's last stage steps: the product of the strides on
    its main path (the shortcuts' 1x1 convolutions repeat them)."""
    import torch

    stride = 1
    for name, module in trunk.named_modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.MaxPool2d) and "downsample" not in name:
            step = module.stride
            stride *= step[0] if isinstance(step, tuple) else step
    return stride


def upsample(cam: np.ndarray, size: tuple[int, int], stride: int) -> np.ndarray:
    """The last stage's ``(h, w)`` cells to ``size`` pixels: linear between cell centres, cell ``i``
    at input pixel ``stride * i``; pixels beyond the first or last cell take its value."""
    rows, cols = (
        np.array([np.interp(np.arange(n), stride * np.arange(k), e) for e in np.eye(k)])
        for n, k in zip(size, cam.shape, strict=True)
    )  # (cells, pixels) weights per axis
    return rows.T @ cam @ cols


def axial_display(volume: CTVolume, image: np.ndarray) -> np.ndarray:
    """A patch (rows along the voxel y axis, columns along x) turned as the axial view shows the
    volume: patient right on the screen's left, anterior at the top, whatever the series' direction."""
    view = plane(volume, "axial")
    if view.normal != 2:  # patches are cut across the voxel z axis: not an axial view here
        return image
    if view.cols == 1:
        image = image.T
    return image[:: -1 if view.flip_rows else 1, :: -1 if view.flip_cols else 1]


def _maps_and_gradients(torch, model, device: str, patch: np.ndarray, diameter_mm: float):
    """The last stage's maps and d(malignant - benign logit)/d(maps), both detached, (1, C, h, w),
    and that logit difference (the model's call: malignant when >= 0).

    The model runs in two steps, the trunk's maps and then the pooled heads, with the maps as a
    detached leaf that requires grad: the gradient reaches them whatever the weights'
    ``requires_grad`` and never touches ``.grad``. No hook goes on the model, so an analysis or another
    explanation running on it in another thread cannot swap its maps for this one's.
    """
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode(False):  # also when called under no_grad or inference mode
            x = torch.from_numpy(np.ascontiguousarray(patch)).to(device)
            diameter = torch.tensor([diameter_mm], dtype=torch.float32, device=device)
            with torch.no_grad():
                maps = model.trunk.feature_maps(x)
            with torch.enable_grad():
                leaf = maps.detach().requires_grad_(True)
                features = torch.flatten(model.trunk.pool(leaf), 1)
                logits = model.heads(features, diameter)["logits"]
                target = logits[0, 1] - logits[0, 0]
                (gradients,) = torch.autograd.grad(target, leaf)
    finally:
        model.train(was_training)
    return leaf.detach(), gradients.detach(), float(target.detach())


def patch_window(
    hu_range: tuple[float, float], window_hu: tuple[float, float] = LUNG_WINDOW_HU
) -> tuple[float, float]:
    """A HU window (default the lung window) in the model's -1..1 input scale for ``hu_range``."""
    low, high = hu_range
    scaled = [(np.clip(v, low, high) - low) * (2.0 / (high - low)) - 1.0 for v in window_hu]
    return float(scaled[0]), float(scaled[1])


def colour_map(values: np.ndarray) -> np.ndarray:
    """Values in 0..1 (clipped; NaN reads as 0) to float RGB in 0..1, shape ``(..., 3)``."""
    v = np.clip(np.nan_to_num(np.asarray(values, np.float64)), 0.0, 1.0)
    return np.stack([np.interp(v, _ANCHORS, _COLOURS[:, c]) for c in range(3)], axis=-1)


def overlay_rgb(
    patch: np.ndarray,
    heatmap: np.ndarray,
    window: tuple[float, float] | None = None,
    alpha: float = 0.4,
) -> np.ndarray:
    """The patch in grey under the coloured heatmap: uint8 ``(H, W, 3)``.

    ``window`` (low, high) is in the patch's own units: HU for a HU slice (e.g. ``LUNG_WINDOW_HU``),
    or ``patch_window(hu_range)`` for a model-scale patch; ``None`` stretches the patch's range.
    ``alpha`` is the heatmap's weight, 0 (grey only) to 1 (colour only).
    """
    patch = np.asarray(patch, np.float64)
    heatmap = np.asarray(heatmap, np.float64)
    if patch.ndim != 2 or patch.shape != heatmap.shape:
        raise ValueError(f"patch {patch.shape} and heatmap {heatmap.shape} must be the same 2D shape")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in 0..1, not {alpha}")
    patch = np.nan_to_num(patch)
    low, high = (float(patch.min()), float(patch.max())) if window is None else map(float, window)
    grey = np.clip((patch - low) / (high - low), 0.0, 1.0) if high > low else np.zeros_like(patch)
    rgb = (1.0 - alpha) * grey[..., None] + alpha * colour_map(heatmap)
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
