"""Predictor on a small checkpoint: ranks, scales, uncertainty, bad markers."""

from __future__ import annotations

import numpy as np
import pytest

from core.model.inference import Predictor
from core.nodule.prediction import Marker
from tests.core.model.test_patches import sphere_volume


def test_predicts_every_marker_with_ranks_and_original_scales(checkpoint):
    predictor = Predictor(checkpoint, device="cpu")
    volume = sphere_volume(6.0)
    markers = [
        Marker("a", (0.0, 0.0, 0.0), 12.0),
        Marker("b", (10.0, 5.0, 3.0), 6.0),
        Marker("c", (-8, -8, 0), 4),
    ]
    results = predictor.predict(volume, markers)
    assert [r.id for r in results] == ["a", "b", "c"]
    assert sorted(r.rank for r in results) == [1, 2, 3]
    best = min(results, key=lambda r: r.rank)
    assert best.malignancy == max(r.malignancy for r in results)
    for r in results:
        assert 0 <= r.malignancy <= 1 and r.uncertainty >= 0
        assert 1 <= r.attributes["calcification"] <= 6 and 1 <= r.attributes["internal_structure"] <= 4
    assert "trained on nothing" in predictor.description
    assert predictor.predict(volume, []) == []


def test_same_input_same_output(checkpoint):
    predictor = Predictor(checkpoint, device="cpu")
    volume = sphere_volume(5.0)
    a = predictor.predict(volume, [Marker("a", (0, 0, 0), 10)])
    b = predictor.predict(volume, [Marker("a", (0, 0, 0), 10)])
    assert a == b and np.isfinite(a[0].malignancy)


def test_channels_last_agrees_with_the_default_layout(checkpoint):
    import torch

    predictor = Predictor(checkpoint, device="cpu", tta=False)
    assert predictor.model.trunk.layer1[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    volume, marker = sphere_volume(5.0), Marker("a", (0, 0, 0), 10)
    fast = predictor.predict(volume, [marker])[0]
    predictor.model.to(memory_format=torch.contiguous_format)
    with patch_layout(torch.contiguous_format):
        plain = predictor.predict(volume, [marker])[0]
    assert fast.malignancy == pytest.approx(plain.malignancy, abs=1e-5)
    for name, value in fast.attributes.items():
        assert value == pytest.approx(plain.attributes[name], abs=1e-4)


def patch_layout(layout):
    from unittest import mock

    return mock.patch("core.model.inference.conv_layout", lambda device: layout)


def test_marker_outside_the_volume_is_named(checkpoint):
    with pytest.raises(ValueError, match=r"marker far: .*outside the volume"):
        Predictor(checkpoint, device="cpu").predict(sphere_volume(3.0), [Marker("far", (900, 0, 0), 5)])
