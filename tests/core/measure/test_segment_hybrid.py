"""The hybrid segment_nodule: the classical mask, or the learned one where the classical one is
suspect (a small marker, a ground-glass mask); the classical mask kept, with a warning, where the
learned segmenter cannot help; the classical refusals unchanged."""

import numpy as np
import pytest

from core.measure import learned, segment
from core.measure.segment import SegmentationError, learned_reason, segment_nodule, segment_nodule_classical
from tests.core.measure.test_segment import GROUND_GLASS, _chest


def test_a_large_solid_nodule_keeps_the_classical_mask():
    volume, centre, _ = _chest(radius=5.0)
    classical = segment_nodule_classical(volume, centre, 10.0)
    assert learned_reason(volume, classical, 10.0) is None
    mask = segment_nodule(volume, centre, 10.0)
    assert mask.method == segment.METHOD
    assert np.array_equal(mask.mask, classical.mask) and mask.origin_zyx == classical.origin_zyx


def test_a_small_marker_goes_to_the_learned_segmenter():
    volume, centre, _ = _chest(radius=2.5)
    classical = segment_nodule_classical(volume, centre, 5.0)
    assert "5.0 mm marker" in learned_reason(volume, classical, 5.0)
    mask = segment_nodule(volume, centre, 5.0)
    assert mask.method == learned.METHOD and mask.voxels > 0


def test_a_ground_glass_mask_goes_to_the_learned_segmenter():
    volume, centre, _ = _chest(nodule_hu=GROUND_GLASS, radius=5.0)
    classical = segment_nodule_classical(volume, centre, 10.0)
    assert "ground glass" in learned_reason(volume, classical, 10.0)
    assert segment_nodule(volume, centre, 10.0).method == learned.METHOD


@pytest.mark.parametrize(
    "failure",
    [SegmentationError("no nodule found"), learned.SegmenterFileError("seg3d.safetensors", "damaged")],
)
def test_the_classical_mask_stays_with_a_warning_when_the_learned_one_cannot_help(monkeypatch, failure):
    def refuse(*args, **kwargs):
        raise failure

    monkeypatch.setattr(learned, "segment_nodule_learned", refuse)
    volume, centre, _ = _chest(radius=2.5)
    mask = segment_nodule(volume, centre, 5.0)
    assert mask.method == segment.METHOD and mask.voxels > 0
    assert any("classical mask kept" in w for w in mask.warnings)


def test_thick_slice_warning_stays_on_a_learned_mask():
    volume, centre, _ = _chest(spacing_zyx=(2.5, 0.7, 0.7), radius=3.0)
    mask = segment_nodule(volume, centre, 6.0)
    assert mask.method == learned.METHOD
    assert any("less reliable" in w for w in mask.warnings)


def test_a_marker_in_air_is_still_refused():
    volume, centre, _ = _chest(radius=3.0)
    with pytest.raises(SegmentationError, match="no nodule at the marker"):
        segment_nodule(volume, np.add(centre, [12.0, 12.0, 0.0]), 5.0)
