"""Grad-CAM of the malignancy output: shapes and range, the model left untouched, determinism, an
exact check on a hand-wired model whose evidence is known, and what the demo model really shows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from core.imaging.mpr import plane
from core.model.checkpoints import save_checkpoint
from core.model.explain import ELSEWHERE_NOTE, NOTE, SIZE_NOTE, ZERO_NOTE, explain, overlay_rgb, patch_window
from core.model.inference import Predictor
from core.model.patches import PatchConfig, extract_patches
from core.nodule.prediction import Marker
from core.volume import CTVolume
from models.mtmr import MTMRNet, MTMRNetConfig
from tests.core.model.test_patches import sphere_volume

SIZE = 32
CARD = {"name": "tiny", "version": "0", "trained_on": "nothing"}


def tiny_predictor(tmp_path, model: MTMRNet, config: PatchConfig | None = None) -> Predictor:
    card = {**CARD, "preprocessing": (config or PatchConfig(size=SIZE)).to_dict()}
    save_checkpoint(tmp_path / "m.safetensors", model, card)
    return Predictor(tmp_path / "m.safetensors", device="cpu")


@pytest.fixture
def predictor(tmp_path):
    torch.manual_seed(0)
    model = MTMRNet(MTMRNetConfig(depth=18, width=8, input_size=SIZE))
    with torch.no_grad():  # residual branches on, so the random trunk sees more than a sparse grid
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.fill_(1.0)
    return tiny_predictor(tmp_path, model)


def hooks(model: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()
    )


def test_shapes_range_and_fields(predictor):
    volume = sphere_volume(6.0)
    marker = Marker("a", (0.0, 0.0, 0.0), 12.0)
    result = explain(predictor, volume, marker)
    patches = extract_patches(volume, marker.centre_mm, marker.diameter_mm, predictor.patch_config)
    assert result.slice_index == len(patches) // 2 and result.target == "malignancy"
    assert result.patch.shape == result.heatmap.shape == (SIZE, SIZE)
    assert result.patch.dtype == result.heatmap.dtype == np.float32
    np.testing.assert_array_equal(result.patch, patches[result.slice_index, 0])
    assert result.heatmap.min() >= 0.0 and result.heatmap.max() in (0.0, 1.0)
    assert result.note.startswith(NOTE.format(call=result.call) if result.heatmap.max() else ZERO_NOTE)
    assert result.note.endswith(SIZE_NOTE)  # the compact design reads the diameter too
    first = explain(predictor, volume, marker, slice_index=0)
    assert first.slice_index == 0 and not np.array_equal(first.patch, result.patch)
    with pytest.raises(ValueError, match="out of range"):
        explain(predictor, volume, marker, slice_index=len(patches))
    with pytest.raises(ValueError, match=r"marker far: .*outside the volume"):
        explain(predictor, volume, Marker("far", (900.0, 0.0, 0.0), 5.0))


def test_model_is_left_exactly_as_found_and_results_repeat(predictor):
    model = predictor.model
    model.attribute_fc[0].weight.requires_grad_(False)  # a partly frozen model stays so
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    volume = sphere_volume(5.0)
    marker = Marker("a", (0.0, 0.0, 0.0), 10.0)
    first = explain(predictor, volume, marker)
    with torch.inference_mode():  # callers may sit inside no-grad code
        second = explain(predictor, volume, marker)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert hooks(model) == 0 and not model.training and torch.is_grad_enabled()
    np.testing.assert_array_equal(first.heatmap, second.heatmap)
    np.testing.assert_array_equal(first.patch, second.patch)
    model.train()  # a model found in training mode goes back to it, and dropout is off meanwhile
    third = explain(predictor, volume, marker)
    assert model.training and hooks(model) == 0
    np.testing.assert_array_equal(first.heatmap, third.heatmap)


def test_another_forward_on_the_model_during_an_explanation_changes_nothing(predictor, monkeypatch):
    """The app runs analyses and explanations on one model in worker threads. A forward of someone
    else's patch in the middle of an explanation (here: forced, from inside its heads) used to fire
    the explanation's hook and swap its maps: "RuntimeError: The differentiated Tensor ... not used"."""
    volume = sphere_volume(6.0)
    marker = Marker("a", (0.0, 0.0, 0.0), 12.0)
    alone = explain(predictor, volume, marker)
    model, heads = predictor.model, predictor.model.heads
    other = torch.from_numpy(extract_patches(volume, (3.0, 0.0, 0.0), 12.0, predictor.patch_config)[:1])

    def interleaved(features, diameter=None):
        with torch.no_grad():
            heads(model.trunk(other), diameter)  # another nodule, analysed meanwhile
        return heads(features, diameter)

    monkeypatch.setattr(model, "heads", interleaved)
    meanwhile = explain(predictor, volume, marker)
    np.testing.assert_array_equal(meanwhile.heatmap, alone.heatmap)
    assert meanwhile.call == alone.call and hooks(model) == 0


def brightness_model(darkness: float = 0.0) -> MTMRNet:
    """Hand-wired: the last stage's channel 0 is ReLU(input) sampled at every 8th pixel (0, 8, 16,
    24), and the malignant logit is its mean, so the true Grad-CAM is that sampled brightness, each
    sample at the pixel it came from; nothing else feeds the logits. ``darkness`` > 0: channel 1 is
    ReLU(-input) and counts for malignant with that weight."""
    model = MTMRNet(MTMRNetConfig(depth=18, width=4, input_size=SIZE, stem_stride=1, size_input=False))
    with torch.no_grad():
        for module in model.trunk.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.zero_()
        model.trunk.conv1.weight[0, 0, 1, 1] = 1.0
        model.trunk.conv1.weight[1, 0, 1, 1] = -1.0
        for stage in (model.trunk.layer2, model.trunk.layer3, model.trunk.layer4):
            stage[0].downsample[0].weight[0, 0, 0, 0] = 1.0
            stage[0].downsample[0].weight[1, 1, 0, 0] = 1.0
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.weight[1, 0] = 1.0
        model.classifier.weight[1, 1] = darkness
    return model


def interpolate_cells(cells: np.ndarray, size: int, step: int) -> np.ndarray:
    """Linear between cell samples taken at pixels 0, step, 2 step...; the ends held."""
    along = [np.interp(np.arange(size), step * np.arange(len(cells)), e) for e in np.eye(len(cells))]
    weights = np.array(along)  # (cells, pixels)
    return weights.T @ cells @ weights


def test_heat_follows_the_evidence_exactly(tmp_path):
    predictor = tiny_predictor(tmp_path, brightness_model())
    volume = sphere_volume(9.0)
    result = explain(predictor, volume, Marker("a", (12.0, 0.0, 0.0), 18.0))  # sphere left of centre
    expected = interpolate_cells(np.maximum(result.patch[::8, ::8], 0.0), SIZE, 8)
    np.testing.assert_allclose(result.heatmap, expected / expected.max(), atol=1e-5)
    assert result.note.startswith(NOTE.format(call="malignant")) and result.call == "malignant"
    left, right = result.heatmap[:, : SIZE // 2].mean(), result.heatmap[:, SIZE // 2 :].mean()
    assert left > 5 * right  # columns run with patient x (L), so the sphere at x = -12 mm is on the left


def test_heat_sits_on_the_pixel_its_evidence_came_from(tmp_path):
    """A 2 mm sphere lands on patch pixel (row 16, col 8) of a 32 px, 48 mm patch: the only sample
    of the hand-wired model that sees it. The heat must peak there and centre there; a plain
    bilinear resize put it half a cell (3.5 px) down and right, beside the sphere."""
    predictor = tiny_predictor(tmp_path, brightness_model())
    result = explain(predictor, sphere_volume(2.0), Marker("a", (11.25, -0.75, 0.0), 4.0))
    assert result.patch[16, 8] > 0 and (result.patch > 0).sum() <= 9  # the sphere, as set up
    assert np.unravel_index(np.argmax(result.heatmap), result.heatmap.shape) == (16, 8)
    np.testing.assert_allclose(result.centre_px, (16.0, 8.0), atol=1e-6)


def test_a_nodule_scored_benign_lights_the_nodule_not_its_surroundings(tmp_path):
    """The sphere argues benign and the dark lung around it weakly malignant; the model calls it
    benign. The map shows the evidence for that call, on the sphere; explaining "malignant" only lit
    the surroundings, stretched to full colour."""
    predictor = tiny_predictor(tmp_path, brightness_model(darkness=0.02))
    with torch.no_grad():
        predictor.model.classifier.weight[1, 0] = -1.0
    result = explain(predictor, sphere_volume(6.0), Marker("a", (0.0, 0.0, 0.0), 12.0))
    assert result.call == "benign" and result.note.startswith(NOTE.format(call="benign"))
    inside = result.patch > 0
    assert result.heatmap[inside].mean() > 5 * result.heatmap[~inside].mean()
    assert result.on_nodule and ELSEWHERE_NOTE not in result.note


def test_a_map_that_looks_elsewhere_says_so(tmp_path):
    """Bright tissue at the patch's edge drives the call: the map's centre lies outside the marker."""
    predictor = tiny_predictor(tmp_path, brightness_model())
    result = explain(predictor, sphere_volume(9.0), Marker("a", (21.0, 0.0, 0.0), 4.0))
    assert result.call == "malignant" and not result.on_nodule
    assert result.note == NOTE.format(call="malignant") + ELSEWHERE_NOTE


def test_a_map_with_no_evidence_for_the_call_is_zero_and_says_so(tmp_path):
    model = brightness_model()
    with torch.no_grad():
        model.classifier.weight[1, 0] = -1.0  # brightness argues benign everywhere...
        model.classifier.bias[1] = 100.0  # ...yet the call is malignant, on no evidence in the image
    result = explain(tiny_predictor(tmp_path, model), sphere_volume(9.0), Marker("a", (0.0, 0.0, 0.0), 18.0))
    assert result.call == "malignant"
    assert not result.heatmap.any() and result.heatmap.shape == (SIZE, SIZE)
    assert result.note == ZERO_NOTE and result.centre_px is None and not result.on_nodule


def test_patch_and_map_turn_as_the_axial_view(tmp_path):
    """A series stored with its columns running to the patient's right shows the patch mirrored
    back, so the model's input matches the axial patch beside it: right on the left."""
    predictor = tiny_predictor(tmp_path, brightness_model())
    volume = sphere_volume(9.0)
    affine = volume.affine.copy()
    affine[:3, 3] = volume.voxel_to_mm((volume.shape[2] - 1, 0, 0))  # voxel 0 is the old last column
    affine[:3, 0] *= -1
    flipped = CTVolume(np.ascontiguousarray(volume.array[:, :, ::-1]), affine)
    marker = Marker("a", (12.0, 0.0, 0.0), 18.0)
    straight, mirrored = explain(predictor, volume, marker), explain(predictor, flipped, marker)
    assert plane(flipped, "axial").flip_cols
    np.testing.assert_allclose(mirrored.patch, straight.patch, atol=1e-5)
    left, right = mirrored.heatmap[:, : SIZE // 2].mean(), mirrored.heatmap[:, SIZE // 2 :].mean()
    assert left > 5 * right  # the sphere, on the patient's right of the marker, stays on the left


def test_overlay_colours_and_window():
    patch = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
    heat = np.zeros((3, 4), np.float32)
    heat[0, 0], heat[2, 3] = 1.0, np.nan
    grey = overlay_rgb(patch, heat, alpha=0.0)
    assert grey.shape == (3, 4, 3) and grey.dtype == np.uint8
    assert grey[0, 0].tolist() == [0, 0, 0] and grey[2, 3].tolist() == [255, 255, 255]
    assert np.all(grey[..., 0] == grey[..., 2])
    rgb = overlay_rgb(patch, heat)  # default alpha 0.4 over the patch's own range
    assert rgb[0, 0].tolist() == [51, 0, 0]  # hottest: dark red at 0.4
    assert rgb[2, 3].tolist() == [153, 153, 204]  # NaN heat reads as 0: dark blue over white
    windowed = overlay_rgb(patch, heat, window=(-0.5, 0.5), alpha=0.0)
    assert windowed[0, 1].tolist() == [0, 0, 0] and windowed[2, 2].tolist() == [255, 255, 255]
    assert overlay_rgb(np.zeros((2, 2)), np.zeros((2, 2)), alpha=0.0).max() == 0  # flat patch: black
    low, high = patch_window((-1100.0, 500.0))  # the lung window in the model's scale
    assert low == -1.0 and high == pytest.approx(0.5625)
    with pytest.raises(ValueError, match="same 2D shape"):
        overlay_rgb(patch, heat[:2])
    with pytest.raises(ValueError, match="alpha"):
        overlay_rgb(patch, heat, alpha=1.5)


def phantom_masks(folder, volume: CTVolume) -> CTVolume:
    """The demo nodules' consensus masks (occupancy > 0.5) placed as the phantom placed them:
    1000 inside, 0 outside, on the study's grid, so ``extract_patches`` cuts them like the CT."""
    import json

    from core.lidc.table import load_nodules
    from core.phantom.nodules import resample_mask

    pool = {n.nodule_id: n for n in load_nodules()}
    masks = np.zeros(volume.shape, np.int16)
    for truth in json.loads((folder / "ground_truth.json").read_text())["nodules"]:
        shape = resample_mask(pool[truth["lidc"]["nodule_id"]], volume.spacing)
        start = np.array(truth["centre_voxel_zyx"]) - shape.centre_offset.astype(int)
        inside = shape.occupancy > 0.5
        masks[tuple(slice(a, a + n) for a, n in zip(start, inside.shape, strict=True))] |= inside
    return CTVolume(masks * 1000, volume.affine)


def test_demo_model_on_demo_nodules():
    """What the built-in demo model (mtmr-compact 20261207.2) shows on the demo phantom, whose
    nodules' true masks are known, measured rather than hoped for.

    Its patches are paper crops (1.25x the marker diameter; three channels: the slice and its
    neighbours a quarter diameter below and above). Central slice of the six nodules of the demo's
    current study (demo v2, a follow-up pair): the map's centre of mass lies inside the nodule's mask
    for all six; mean heat inside / outside the mask: n4 (28.5 mm) 0.38 / 0.48 (called malignant: the
    map follows the edge) and n6 (20.1 mm) 0.57 / 0.50 (called malignant), n2 0.49 / 0.46,
    n3 0.53 / 0.08, n5 0.41 / 0.13 (called benign: the nodule itself), n1 (6.4 mm, benign) 0.26 /
    0.37 (the nominal 20261204.2 model: n4 0.47 / 0.57, n6 0.50 / 0.49, n1 0.44 / 0.49). Before the
    map showed the model's own call and sat each cell where it looks, the centres of three demo v1
    nodules lay in a corner of the patch, outside the nodule. Re-measure when the demo model or the
    demo study is replaced.
    """
    from core.imaging.open_study import open_study
    from core.model.store import DEMO_MODEL
    from core.phantom.demo import demo_markers, demo_study

    folder = demo_study()
    volume, _ = open_study(folder)
    masks = phantom_masks(folder, volume)
    predictor = Predictor(DEMO_MODEL, device="cpu")
    config = predictor.patch_config
    cut = replace(config, channels=1, neighbour_fraction=0.0, hu_range=(0.0, 1000.0))  # the masks alike
    markers = [Marker(m["name"], tuple(m["centre_mm"]), m["diameter_mm"]) for m in demo_markers(folder)]
    assert len(markers) == 6
    centred, measured = set(), {}
    for marker in markers:
        result = explain(predictor, volume, marker)
        assert result.heatmap.shape == (config.size, config.size)
        assert float(result.heatmap.max()) == 1.0 and float(result.heatmap.min()) >= 0.0
        assert result.note.startswith(NOTE.format(call=result.call)) and result.note.endswith(SIZE_NOTE)
        assert result.side_mm == pytest.approx(1.25 * marker.diameter_mm)  # paper crops, all >= 3 mm
        mask = extract_patches(masks, marker.centre_mm, marker.diameter_mm, cut)[result.slice_index, 0] > 0
        row, col = (round(v) for v in result.centre_px)
        if mask[row, col]:
            centred.add(marker.id)
        else:  # the panel must then say plainly that the model looked elsewhere
            assert ELSEWHERE_NOTE in result.note
        measured[marker.id] = (result.call, result.heatmap[mask].mean(), result.heatmap[~mask].mean())
    assert centred == {"n1", "n2", "n3", "n4", "n5", "n6"}
    assert {name for name, (call, _, _) in measured.items() if call == "malignant"} == {"n4", "n6"}
    lit = {name for name, (_, h_in, h_out) in measured.items() if h_in > h_out}
    assert lit == {"n2", "n3", "n5", "n6"}
    assert hooks(predictor.model) == 0
