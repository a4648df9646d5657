"""Checkpoints round-trip, refuse damaged or foreign files, and never replace a good file on failure."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from core.model.checkpoints import CheckpointError, load_checkpoint, read_card, save_checkpoint
from models.mtmr import MTMRNet, MTMRNetConfig

SMALL = MTMRNetConfig(depth=18, width=8, input_size=32)


def test_round_trip_gives_identical_outputs(tmp_path):
    model = MTMRNet(SMALL).eval()
    card = save_checkpoint(tmp_path / "m.safetensors", model, {"name": "test", "trained_on": "nothing"})
    loaded, card2 = load_checkpoint(tmp_path / "m.safetensors")
    x = torch.randn(2, 1, 32, 32)
    assert torch.allclose(model(x)["logits"], loaded(x)["logits"])
    assert card2["weights_sha256"] == card["weights_sha256"] and card2["trained_on"] == "nothing"
    assert read_card(tmp_path / "m.safetensors")["config"]["width"] == 8


def test_tampered_weights_are_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, MTMRNet(SMALL), {})
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip bits inside the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match the hash"):
        load_checkpoint(path)


def test_truncated_foreign_and_missing_files_are_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, MTMRNet(SMALL), {})
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match=r"m\.safetensors"):
        load_checkpoint(path)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="no model card"):
        load_checkpoint(foreign)
    pickle = tmp_path / "old.pt"
    pickle.write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(pickle)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    card = save_checkpoint(path, MTMRNet(SMALL), {})
    other = MTMRNet(MTMRNetConfig(depth=18, width=16, input_size=32))
    state = {k: v.contiguous() for k, v in other.state_dict().items()}
    from core.util.safetensors_io import tensors_sha256

    card["weights_sha256"] = tensors_sha256(state)  # a consistent hash, but the wrong architecture
    save_file(state, str(path), metadata={"model_card": json.dumps(card)})
    with pytest.raises(CheckpointError, match="do not fit the model: size mismatch"):
        load_checkpoint(path)


def test_ddp_prefixes_are_stripped(tmp_path):
    model = MTMRNet(SMALL)
    wrapped = torch.nn.Module()
    wrapped.module = model
    wrapped.config = model.config
    save_checkpoint(tmp_path / "m.safetensors", wrapped, {})
    loaded, _ = load_checkpoint(tmp_path / "m.safetensors")
    assert set(loaded.state_dict()) == set(model.state_dict())


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    first = save_checkpoint(path, MTMRNet(SMALL), {"version": 1})
    import safetensors.torch

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, MTMRNet(SMALL), {"version": 2})
    assert read_card(path)["weights_sha256"] == first["weights_sha256"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_non_finite_weights_are_refused(tmp_path):
    """Review: a diverged model's NaN weights gave NaN scores: predict wrote nulls and exited 0, the
    report's SR failed, batch died with a TypeError traceback. The model is refused on loading."""
    model = MTMRNet(MTMRNetConfig(width=8, input_size=32))
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, {"name": "diverged"})
    with pytest.raises(CheckpointError, match="not finite"):
        load_checkpoint(path)
