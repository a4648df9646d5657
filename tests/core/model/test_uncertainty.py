"""The TTA interval (six views in one forward pass) and the decision band it is judged against."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.model.calibration import apply_temperature
from core.model.checkpoints import rewrite_card, save_checkpoint
from core.model.inference import Predictor
from core.model.patches import PatchConfig
from core.model.tta import EXTRA_VIEWS, _view
from core.nodule.analysed import Analysed
from core.nodule.prediction import Marker, NoduleResult
from core.volume import CTVolume
from models.mtmr import MTMRNet, MTMRNetConfig
from tests.core.model.test_patches import sphere_volume


def lopsided_volume():
    """A sphere with a spur along +x and a shelf along +z: no rotation or flip maps it onto itself."""
    sphere = sphere_volume(6.0)
    hu = sphere.array.copy()
    hu[30:34, 62:66, 64:76] = 300  # spur, one side in-plane
    hu[33:36, 60:64, 60:64] = 200  # above the centre only
    return CTVolume(hu, sphere.affine)


MARKERS = [Marker("a", (0.0, 0.0, 0.0), 12.0), Marker("b", (10.0, 5.0, 3.0), 6.0)]


def tiny_checkpoint(path, channels: int):
    torch.manual_seed(0)
    model = MTMRNet(MTMRNetConfig(depth=18, width=8, input_size=32, in_channels=channels))
    patch = PatchConfig(size=32, mode="paper", channels=channels, neighbour_fraction=0.25 * (channels == 3))
    save_checkpoint(path, model, {"name": "tiny", "trained_on": "x", "preprocessing": patch.to_dict()})
    return path


@pytest.mark.parametrize("channels", [1, 3])
def test_six_distinct_views_and_the_z_flip_reverses_the_channels(channels):
    patch = np.random.default_rng(0).normal(size=(channels, 8, 8)).astype(np.float32)
    views = [patch, patch[..., ::-1], *(_view(patch, *v) for v in EXTRA_VIEWS[channels])]
    assert len(views) == 6
    assert len({v.tobytes() for v in views}) == 6
    if channels == 3:
        assert np.array_equal(_view(patch, 0, False, True), patch[::-1])


@pytest.mark.parametrize("channels", [1, 3])
def test_interval_holds_the_score_and_leaves_it_unchanged(tmp_path, channels):
    path = tiny_checkpoint(tmp_path / "m.safetensors", channels)
    volume = lopsided_volume()
    plain = Predictor(path, device="cpu", tta=False).predict(volume, MARKERS)
    tta = Predictor(path, device="cpu").predict(volume, MARKERS)
    for p, t in zip(plain, tta, strict=True):
        assert p.interval is None and t.interval is not None
        assert t.malignancy == pytest.approx(p.malignancy) and t.attributes == pytest.approx(p.attributes)
        low, high = t.interval
        assert (
            0 <= low - 1e-9 <= t.malignancy <= high + 1e-9 <= 1 and high > low
        )  # an untrained model's views disagree
    rewrite_card(path, {"calibration": {"temperature": 2.0}})
    calibrated = Predictor(path, device="cpu").predict(volume, MARKERS)
    for t, c in zip(tta, calibrated, strict=True):  # the interval is calibrated like the score
        raw = np.log(np.array(t.interval) / (1 - np.array(t.interval)))
        assert c.interval == pytest.approx(1 / (1 + np.exp(-raw / 2.0)), abs=1e-5)
        assert c.malignancy == pytest.approx(float(apply_temperature(t.malignancy, 2.0)), abs=1e-6)


def test_every_view_of_every_nodule_goes_through_one_forward_pass(tmp_path):
    predictor = Predictor(tiny_checkpoint(tmp_path / "m.safetensors", 3), device="cpu")
    calls = []
    forward = predictor.model.forward
    predictor.model.forward = lambda x, d=None: calls.append(len(x)) or forward(x, d)
    predictor.predict(sphere_volume(6.0), MARKERS)
    slices = 2 * 5 + 2 * 5  # both markers span at least 5 slices (max_slices 5): slices and mirrors
    assert calls == [slices + 2 * 4]  # + four more views of each central slice


def test_decision_band_marks_intervals_that_cross_an_edge():
    def result(interval):
        return NoduleResult("a", 0.3, 0.0, {}, interval=interval)

    assert result((0.05, 0.2)).indeterminate and result((0.6, 0.8)).indeterminate
    assert not result((0.2, 0.5)).indeterminate and not result((0.01, 0.09)).indeterminate
    assert not result(None).indeterminate and not result((0.75, 0.95)).indeterminate
    assert NoduleResult("a", 0.34, 0.0, {}, interval=(0.22, 0.47)).score_text == "p = 0.34 (0.22-0.47)"
    assert result(None).score_text == "p = 0.30"


def test_session_keeps_interval_and_warnings_and_recomputes_older_results():
    result = NoduleResult(
        "a", 0.3, 0.01, {"texture": 4.0}, interval=(0.2, 0.4), warnings=("modality MR, not CT",)
    )
    saved = Analysed(result, (1.0, 2.0, 3.0), 8.0, "abc").to_dict()
    assert saved["malignancy_interval"] == [0.2, 0.4] and saved["indeterminate"] is False
    back = Analysed.from_dict("a", saved)
    assert back.result.interval == (0.2, 0.4) and back.result.warnings == ("modality MR, not CT",)
    older = {k: v for k, v in saved.items() if k not in ("malignancy_interval", "ood_warnings")}
    assert Analysed.from_dict("a", older) is None  # computed before calibration and TTA: again
    assert Analysed.from_dict("a", saved | {"malignancy_interval": [0.2, float("inf")]}) is None


def test_command_lines_print_the_interval_and_the_flags():
    assert NoduleResult("a", 0.3, 0.0, {}).flags_text == ""
    flagged = NoduleResult("a", 0.12, 0.0, {}, interval=(0.06, 0.19), warnings=("modality MR, not CT",))
    assert (
        flagged.flags_text == " (interval 0.06-0.19; indeterminate; out of distribution: modality MR, not CT)"
    )
