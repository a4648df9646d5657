"""scripts/train_segmenter.py refuses bad options and unusable weights in words, before any work,
and leaves the weights it was given as they were."""

from __future__ import annotations

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
