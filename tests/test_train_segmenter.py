"""scripts/train_segmenter.py refuses bad options and unusable weights in words, before any work,
and leaves the weights it was given as they were."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from core.measure import learned
from scripts import train_segmenter


@pytest.mark.parametrize(
    "argv,reason",
    [(["--out", "seg.pt"], "must end in .safetensors"), (["--steps", "0"], "must be >= 1")],
)
def test_bad_options_are_refused(argv, reason, capsys):
    with pytest.raises(SystemExit) as exit_:
        train_segmenter.main(argv)
    assert exit_.value.code == 2 and reason in capsys.readouterr().err


def test_revalidating_a_missing_or_damaged_file_says_so_and_changes_nothing(tmp_path, capsys):
    missing = tmp_path / "none.safetensors"
    assert train_segmenter.main(["--revalidate", "--out", str(missing)]) == 1
    assert f"cannot revalidate: {missing}: no such segmenter weights file" in capsys.readouterr().err
    assert not missing.exists()
    damaged = tmp_path / "seg3d.safetensors"
    data = bytearray(learned.WEIGHTS.read_bytes())
    data[-10] ^= 0xFF
    damaged.write_bytes(bytes(data))
    assert train_segmenter.main(["--revalidate", "--out", str(damaged)]) == 1
    assert "damaged or edited" in capsys.readouterr().err
    assert damaged.read_bytes() == bytes(data)


def _labelled_volume_mm3(shift_zyx, occupancy: bool) -> float:
    """The volume a training label gives a small nodule (ellipsoid, 2.5 mm slices) moved by
    ``shift_zyx``: the label cut onto the patch grid like the input, summed."""
    import numpy as np

    from core.measure.mask import NoduleMask
    from core.phantom.nodules import truth_mask_box
    from core.volume import CTVolume
    from tests.nodule_factory import ellipsoid_nodule

    spacing, centre_zyx = (0.7, 0.7, 2.5), (20, 32, 32)
    nodule = ellipsoid_nodule(radii_mm=(2.6, 2.4, 2.2), spacing=(0.6, 0.6, 0.625))
    volume = CTVolume(np.full((40, 64, 64), -850, dtype=np.int16), np.diag([*spacing, 1.0]))
    placed = SimpleNamespace(nodule=nodule, centre_zyx=centre_zyx, shift_zyx=shift_zyx, index=0)
    origin, box = truth_mask_box(nodule, centre_zyx, spacing, shift_zyx)
    label = train_segmenter.occupancy_labels(volume, [placed])["n1"]
    assert label.origin_zyx == origin and np.array_equal(label.mask >= 0.5, box)  # where truth_masks puts it
    if not occupancy:
        label = NoduleMask(origin, box, "truth")
    centre_mm = volume.voxel_to_mm(np.array(centre_zyx[::-1], dtype=float))
    _, y = train_segmenter.cut(volume, centre_mm, 6.0, label)
    step_mm = learned.FOV_PER_DIAMETER * 6.0 / learned.PATCH
    return float(y.sum()) / 255 * step_mm**3


def test_occupancy_labels_give_a_nodule_the_same_volume_wherever_it_lies_against_the_grid():
    """Issue 17, repeatability: a thresholded label moves by a slice with a sub-voxel shift, so a
    network trained on it learns a volume that does too; the occupancy label keeps the nodule's."""
    truth_mm3 = 4 / 3 * 3.141592653589793 * 2.6 * 2.4 * 2.2
    plain, moved = (_labelled_volume_mm3(s, occupancy=True) for s in ((0, 0, 0), (0.45, 0.3, -0.4)))
    assert moved == pytest.approx(plain, rel=0.03) and plain == pytest.approx(truth_mm3, rel=0.1)
    plain, moved = (_labelled_volume_mm3(s, occupancy=False) for s in ((0, 0, 0), (0.45, 0.3, -0.4)))
    assert abs(moved - plain) > 0.1 * min(moved, plain)  # the thresholded label: a layer apart
