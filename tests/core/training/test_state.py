"""Resumable training: an interrupted run continues to the same weights; bad state files are refused."""

from __future__ import annotations

import sys

import pytest
import torch

from core.training import state as training_state
from core.training.state import TrainingStateError, load_state, state_path_for
from core.training.trainer import TrainConfig, TrainingCancelled, train
from models.mtmr import MTMRNet, MTMRNetConfig
from tests.core.training.fake_data import fake_dataset

TINY = MTMRNetConfig(depth=18, width=8, input_size=32)
TRAIN, VAL = fake_dataset(), fake_dataset(seed=1)
STEPS = len(TRAIN.patches) // 16  # steps per epoch at batch size 16


@pytest.fixture(autouse=True)
def restore_torch_settings():
    """Deterministic mode is process-wide: put it back. One thread keeps these tiny runs quick."""
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)


def config(**changes) -> TrainConfig:
    return TrainConfig(
        **{"epochs": 2, "batch_size": 16, "seed": 5, "deterministic": True, "patience": 5, "step_size": 2}
        | changes
    )


def model(seed: int = 5) -> MTMRNet:
    torch.manual_seed(seed)
    return MTMRNet(TINY)


def run(cfg: TrainConfig, net=None, **kwargs) -> list[dict]:
    return list(train(cfg, TRAIN, VAL, model=net or model(cfg.seed), **kwargs))


def cancel_after(calls: int):
    count = [0]

    def cancelled() -> bool:
        count[0] += 1
        return count[0] > calls

    return cancelled


def weights(net) -> list[torch.Tensor]:
    return [t.detach().clone() for t in net.state_dict().values()]


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_cancelled_run_continues_to_the_same_weights_and_metrics(tmp_path, ema):
    straight = run(config(ema=ema))
    path = tmp_path / "m.state.safetensors"
    with pytest.raises(TrainingCancelled):  # in the second epoch, after the first one was saved
        run(config(ema=ema), state_path=path, cancelled=cancel_after(STEPS + 2))
    assert path.is_file() and load_state(path).epoch == 1
    resumed = run(config(ema=ema), net=model(seed=123), state_path=path)  # other initial weights
    assert resumed[0] == {"event": "resumed", "epoch": 1}
    assert [e["epoch"] for e in resumed if e["event"] == "epoch"] == [2]
    assert [e["step"] for e in resumed if e["event"] == "step"] == list(range(1, STEPS + 1))
    a, b = straight[-1], resumed[-1]
    assert a["best_epoch"] == b["best_epoch"] and a["val"] == b["val"]
    for x, y in zip(weights(a["model"]), weights(b["model"]), strict=True):
        assert torch.allclose(x, y)
    last = [e for e in straight if e["event"] == "epoch"][-1]
    again = [e for e in resumed if e["event"] == "epoch"][-1]
    assert last["loss"] == pytest.approx(again["loss"]) and last["val"] == again["val"]
    assert last["lr"] == again["lr"]
    assert load_state(path).epoch == 2  # the trainer leaves the file; the caller removes it


def test_state_holds_everything_named_and_nothing_pickled(tmp_path):
    path = tmp_path / "s.safetensors"
    run(config(epochs=1, ema=0.9), state_path=path)
    assert path.read_bytes()[:1] != b"\x80"  # not a pickle
    saved = load_state(path)
    assert saved.epoch == 1 and saved.best_epoch == 1 and saved.stale == 0
    assert saved.config["ema"] == 0.9 and saved.model_config["width"] == 8
    assert set(saved.model) == set(saved.ema) == set(saved.best_state)
    assert saved.optimiser["param_groups"][0]["betas"] == (0.9, 0.999)
    assert {"step", "exp_avg", "exp_avg_sq"} <= set(saved.optimiser["state"][0])
    assert saved.scheduler["last_epoch"] == 1 and saved.numpy_rng["bit_generator"] == "PCG64"
    assert saved.torch_rng.dtype == torch.uint8 and saved.best_metrics["n"] == 23


def test_finished_or_early_stopped_state_gives_the_result_at_once(tmp_path):
    path = tmp_path / "s.safetensors"
    first = run(config(epochs=1), state_path=path)
    again = run(config(epochs=1), net=model(seed=9), state_path=path)
    assert [e["event"] for e in again] == ["resumed", "done"]
    for x, y in zip(weights(first[-1]["model"]), weights(again[-1]["model"]), strict=True):
        assert torch.equal(x, y)
    saved = load_state(path)
    saved.stale = 5  # as if early stopping had ended the run (patience 5)
    training_state.save_state(path, saved)
    stopped = run(config(epochs=3), net=model(seed=9), state_path=path)
    assert [e["event"] for e in stopped] == ["resumed", "done"]
    saved.stale = 0
    training_state.save_state(path, saved)
    more = run(config(epochs=2), net=model(seed=9), state_path=path)  # more epochs extend a run
    assert [e["epoch"] for e in more if e["event"] == "epoch"] == [2]


def test_damaged_foreign_or_mismatching_state_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "run.state.safetensors"
    run(config(epochs=1), state_path=path)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(TrainingStateError, match=r"run\.state\.safetensors: not a readable safetensors"):
        run(config(), state_path=path)
    damaged = bytearray(good)
    damaged[-100] ^= 0xFF  # inside a tensor
    path.write_bytes(bytes(damaged))
    with pytest.raises(TrainingStateError, match=r"run\.state\.safetensors: .*damaged or edited"):
        run(config(), state_path=path)
    path.write_bytes(b"\x80\x04 a pickle, never loaded")
    with pytest.raises(TrainingStateError, match=r"run\.state\.safetensors"):
        run(config(), state_path=path)
    path.write_bytes(good)
    with pytest.raises(TrainingStateError, match=r"run\.state\.safetensors: .*configuration \(lr: "):
        run(config(lr=1e-2), state_path=path)
    with pytest.raises(TrainingStateError, match=r"run\.state\.safetensors: .*another model \(width: 8"):
        run(config(), net=MTMRNet(MTMRNetConfig(depth=18, width=16, input_size=32)), state_path=path)
    with pytest.raises(TrainingStateError, match=r"run\.state\.safetensors: .*other train data"):
        list(train(config(), fake_dataset(seed=3), VAL, model=model(), state_path=path))
    with pytest.raises(TrainingStateError, match="no such training-state file"):
        load_state(tmp_path / "absent.safetensors")


def test_a_failing_write_leaves_the_previous_state_intact(tmp_path, monkeypatch):
    path = tmp_path / "s.safetensors"
    run(config(epochs=1), state_path=path)
    before = path.read_bytes()
    import safetensors.torch

    def failing(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", failing)
    with pytest.raises(OSError, match="disk full"):
        run(config(epochs=2), state_path=path)
    assert path.read_bytes() == before and load_state(path).epoch == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.safetensors"]  # no temporary file left


def test_state_path_for_a_checkpoint():
    assert state_path_for("out/model.safetensors").as_posix() == "out/model.state.safetensors"
    assert state_path_for("model").as_posix() == "model.state.safetensors"
    assert state_path_for("m.pt").as_posix() == "m.pt.state.safetensors"


@pytest.fixture
def tiny_cli(monkeypatch):
    """``main.py train`` on the fake data with the tiny model (no phantom rendering)."""
    import core.training.data
    import models.mtmr

    monkeypatch.setattr(
        core.training.data, "cached_dataset", lambda spec, **_: TRAIN if spec.split == "train" else VAL
    )
    monkeypatch.setattr(models.mtmr.MTMRNetConfig, "compact", classmethod(lambda cls: TINY))
    from main import build_parser

    def cli(*argv: str) -> int:
        args = build_parser().parse_args(["train", "--batch-size", "16", "--deterministic", *argv])
        return args.func(args)

    return cli


def test_cli_keeps_the_state_beside_the_checkpoint_and_continues(tmp_path, tiny_cli, monkeypatch, capsys):
    import core.training.trainer

    out = tmp_path / "m.safetensors"
    state = tmp_path / "m.state.safetensors"
    original = core.training.trainer.train

    def interrupted(*args, **kwargs):  # Ctrl+C after the first epoch
        for event in original(*args, **kwargs):
            yield event
            if event["event"] == "epoch":
                raise KeyboardInterrupt

    monkeypatch.setattr(core.training.trainer, "train", interrupted)
    assert tiny_cli("--out", str(out), "--epochs", "2") == 130
    assert state.is_file() and not out.exists() and "--continue" in capsys.readouterr().err
    monkeypatch.setattr(core.training.trainer, "train", original)
    assert tiny_cli("--out", str(out), "--epochs", "2") == 2  # would overwrite an unfinished run
    assert "--continue" in capsys.readouterr().err and state.is_file()
    assert tiny_cli("--out", str(out), "--epochs", "2", "--lr", "0.1", "--continue") == 2
    assert "lr: " in capsys.readouterr().err and state.is_file()
    assert tiny_cli("--out", str(out), "--epochs", "2", "--continue") == 0
    printed = capsys.readouterr().out
    assert "after epoch 1" in printed and "epoch 2/2" in printed and "epoch 1/2" not in printed
    assert out.is_file() and not state.exists()  # the state goes once the checkpoint is written
    assert tiny_cli("--out", str(out), "--epochs", "1", "--continue") == 2
    assert "nothing to continue" in capsys.readouterr().err


def test_cli_help_names_the_state_file(capsys, monkeypatch):
    from main import build_parser

    monkeypatch.setattr(sys, "argv", ["main.py"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--continue" in text and ".state.safetensors" in text


def test_load_weights_names_the_file_on_a_shape_mismatch(tmp_path):
    small, wide = MTMRNet(TINY), MTMRNet(MTMRNetConfig(depth=18, width=16, input_size=32))
    with pytest.raises(TrainingStateError, match=r"x\.safetensors: the model weights do not fit"):
        training_state.load_weights(wide, small.state_dict(), tmp_path / "x.safetensors", "model")


def test_cli_field_of_view_reaches_the_model_card(tmp_path, tiny_cli):
    from core.model.checkpoints import read_card

    out = tmp_path / "m.safetensors"
    assert tiny_cli("--out", str(out), "--epochs", "1", "--fov-mm", "32") == 0
    assert read_card(out)["preprocessing"]["fov_mm"] == 32.0


def test_cli_neighbour_slices_make_a_three_channel_model(tmp_path, tiny_cli, monkeypatch):
    from dataclasses import replace

    import numpy as np

    import core.training.data
    from core.model.checkpoints import load_checkpoint

    def three(spec, **_):  # the fake data with each slice's neighbours standing in as channels
        data = TRAIN if spec.split == "train" else VAL
        assert spec.patch.channels == 3 and spec.patch.neighbour_fraction == 0.25
        return replace(data, patches=np.repeat(data.patches, 3, axis=1))

    monkeypatch.setattr(core.training.data, "cached_dataset", three)
    out = tmp_path / "m.safetensors"
    assert tiny_cli("--out", str(out), "--epochs", "1", "--neighbours", "0.25") == 0
    model, card = load_checkpoint(out)
    assert model.config.in_channels == 3 and card["preprocessing"]["neighbour_fraction"] == 0.25
