"""Grad-CAM of the malignancy output: shapes and range, the model left untouched, determinism, an
exact check on a hand-wired model whose evidence is known, and what the demo model really shows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.checkpoints import save_checkpoint
from core.explain import NOTE, SIZE_NOTE, ZERO_NOTE, explain, overlay_rgb, patch_window
from core.inference import Marker, Predictor
from core.patches import PatchConfig, extract_patches
from models.mtmr import MTMRNet, MTMRNetConfig
from tests.core.test_patches import sphere_volume

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
    assert result.note.startswith(NOTE if result.heatmap.max() else ZERO_NOTE)
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


def brightness_model() -> MTMRNet:
    """Hand-wired: the last stage is ReLU(input) sampled every 8th pixel, and the malignant logit is
    its mean, so the true Grad-CAM is that sampled brightness; nothing else feeds the logits."""
    model = MTMRNet(MTMRNetConfig(depth=18, width=4, input_size=SIZE, stem_stride=1, size_input=False))
    with torch.no_grad():
        for module in model.trunk.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.zero_()
        model.trunk.conv1.weight[0, 0, 1, 1] = 1.0
        for stage in (model.trunk.layer2, model.trunk.layer3, model.trunk.layer4):
            stage[0].downsample[0].weight[0, 0, 0, 0] = 1.0
        model.classifier.weight.zero_()
        model.classifier.weight[1, 0] = 1.0
    return model


def test_heat_follows_the_evidence_exactly(tmp_path):
    predictor = tiny_predictor(tmp_path, brightness_model())
    volume = sphere_volume(9.0)
    result = explain(predictor, volume, Marker("a", (12.0, 0.0, 0.0), 18.0))  # sphere left of centre
    sampled = torch.relu(torch.from_numpy(result.patch[None, None, ::8, ::8].copy()))
    expected = torch.nn.functional.interpolate(sampled, size=(SIZE, SIZE), mode="bilinear")[0, 0].numpy()
    np.testing.assert_allclose(result.heatmap, expected / expected.max(), atol=1e-5)
    assert result.note == NOTE
    left, right = result.heatmap[:, : SIZE // 2].mean(), result.heatmap[:, SIZE // 2 :].mean()
    assert left > 5 * right  # columns run with patient x (L), so the sphere at x = -12 mm is on the left


def test_a_map_with_no_positive_evidence_is_zero_and_says_so(tmp_path):
    model = brightness_model()
    with torch.no_grad():
        model.classifier.weight[1, 0] = -1.0  # brightness now argues benign everywhere
    result = explain(tiny_predictor(tmp_path, model), sphere_volume(9.0), Marker("a", (0.0, 0.0, 0.0), 18.0))
    assert not result.heatmap.any() and result.heatmap.shape == (SIZE, SIZE)
    assert result.note == ZERO_NOTE


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


def test_demo_model_on_demo_nodules():
    """What the built-in demo model (mtmr-compact 20261204.2) shows, measured rather than hoped for.

    Its patches are paper crops (1.25x the marker diameter; three channels: the slice and its
    neighbours a quarter diameter below and above), so "outside" is the rim of the square around the
    marker circle. Mean heat inside / outside that circle on the central slice of the six demo nodules:
    n1 0.53 / 0.62, n2 0.06 / 0.12, n3 0.01 / 0.11, n4 0.25 / 0.13, n5 0.06 / 0.17, n6 0.39 / 0.46.
    Only n4 is lit more on the nodule than on its rim: the map mostly follows the nodule's edge, and the
    score also reads the marker diameter (the note says the map cannot show it). Earlier demo weights:
    zero maps on all six (the first), nodule > surroundings on one of six (20261125.3), on the two
    large ones (20261204). Re-measure when the demo model is replaced.
    """
    from core.demo import demo_markers, demo_study
    from core.models_store import DEMO_MODEL
    from core.study import open_study

    folder = demo_study()
    volume, _ = open_study(folder)
    predictor = Predictor(DEMO_MODEL, device="cpu")
    config = predictor.patch_config
    centres = np.arange(config.size) + 0.5 - config.size / 2
    radius_px = np.hypot(*np.meshgrid(centres, centres))
    markers = [Marker(m["name"], tuple(m["centre_mm"]), m["diameter_mm"]) for m in demo_markers(folder)]
    assert len(markers) == 6
    measured = {}
    for marker in markers:
        result = explain(predictor, volume, marker)
        assert result.heatmap.shape == (config.size, config.size)
        peak = float(result.heatmap.max())
        assert peak in (0.0, 1.0) and float(result.heatmap.min()) >= 0.0  # normalised to its peak
        assert result.note.startswith(ZERO_NOTE if peak == 0 else NOTE) and result.note.endswith(SIZE_NOTE)
        assert result.side_mm == pytest.approx(1.25 * marker.diameter_mm)  # paper crops, all >= 3 mm
        inside = radius_px * result.side_mm / config.size <= marker.diameter_mm / 2
        measured[marker.id] = (result.heatmap[inside].mean(), result.heatmap[~inside].mean())
    assert sum(1 for h_in, h_out in measured.values() if h_in + h_out > 0) == 6
    assert {name for name, (h_in, h_out) in measured.items() if h_in > h_out} == {"n4"}
    assert hooks(predictor.model) == 0
