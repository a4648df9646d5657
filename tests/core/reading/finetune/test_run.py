"""A whole fine-tuning run, keeping its model, and the failures (cancel, crash, full disk, failed move)
that must never damage the active model, the model versions or the library."""

from __future__ import annotations

import os

import pytest

import core.training.trainer
from core.model.patches import PatchConfig
from core.reading.finetune.run import keep, run_finetune
from core.training.trainer import TrainingCancelled
from tests.core.reading.finetune.setup_helpers import FAST, everything
from tests.core.reading.test_library import PATCH, enospc, snapshot


def test_a_run_yields_progress_then_the_comparison_and_keeping_is_the_callers_choice(setup, tmp_path):
    registry, library = setup
    before = everything(registry, library)
    events = list(run_finetune(registry, library, FAST, state_path=tmp_path / "run.state.safetensors"))
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["parent", "data"] and kinds[-2:] == ["done", "finished"]
    assert kinds.count("epoch") == 2 and "step" in kinds
    finished = events[-1]
    parent = registry.active()
    assert finished["parent"].id == parent.id and set(finished["comparison"]) == {"active", "new"}
    new_card = finished["card"]
    assert new_card["parent"]["version_id"] == parent.id and new_card["name"] == "tiny-base-ft"
    assert PatchConfig.from_dict(new_card["preprocessing"]) == PATCH and new_card["threshold"] == 0.5
    assert new_card["training"]["kind"] == "finetune" and new_card["training"]["trunk_lr_factor"] == 0.1
    assert new_card["data"]["library"]["val_nodules"] == 2 and "comparison" in new_card["metrics"]
    assert "fine-tuned on 6 reader-confirmed nodules from 3 studies" in new_card["trained_on"]
    assert new_card["domain"] == parent.card["domain"]  # not narrowed to the nominal protocol's
    effect = finished["effect"]  # the change on the held-out nodules, with its bootstrap interval
    assert new_card["metrics"]["effect"]["n"] == effect["n"] == 2 and effect["samples"] == 2000
    assert set(effect["auc"]) == {"difference", "low", "high"}
    assert new_card["training"]["augment"]["hu_range"] == list(PATCH.hu_range)  # on by default
    assert everything(registry, library) == before  # nothing kept yet
    version = keep(registry, finished)
    assert registry.active().id == parent.id and version.card["parent"]["version_id"] == parent.id
    registry.load(version.id)
    activated = keep(registry, finished, activate=True)
    assert registry.active().id == activated.id != version.id
    assert snapshot(library.root) == before["library"]


def test_cancel_keeps_everything_and_the_run_continues_from_its_state(setup, tmp_path):
    registry, library = setup
    before = everything(registry, library)
    state = tmp_path / "run.state.safetensors"
    calls = []

    def cancelled():  # 18 training slices, batches of 8: 2 steps an epoch; stop in the second epoch
        calls.append(1)
        return len(calls) == 4

    with pytest.raises(TrainingCancelled):
        for _ in run_finetune(registry, library, FAST, state_path=state, cancelled=cancelled):
            pass
    assert everything(registry, library) == before and state.is_file()
    events = list(run_finetune(registry, library, FAST, state_path=state))
    assert {"event": "resumed", "epoch": 1} in events and events[-1]["event"] == "finished"


def test_a_crash_inside_the_loop_keeps_everything(setup, tmp_path, monkeypatch):
    registry, library = setup
    before = everything(registry, library)
    real, calls = core.training.trainer._augment, []

    def crashing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated crash in a training step")
        return real(*args)

    monkeypatch.setattr(core.training.trainer, "_augment", crashing)
    state = tmp_path / "run.state.safetensors"
    with pytest.raises(RuntimeError, match="simulated crash"):
        list(run_finetune(registry, library, FAST, state_path=state))
    assert everything(registry, library) == before and state.is_file()  # epoch 1 can be continued


def test_a_full_disk_while_saving_the_training_state_keeps_everything(setup, tmp_path, monkeypatch):
    import safetensors.torch

    registry, library = setup
    before = everything(registry, library)
    monkeypatch.setattr(safetensors.torch, "save_file", enospc)
    with pytest.raises(OSError, match="No space"):
        list(run_finetune(registry, library, FAST, state_path=tmp_path / "run.state.safetensors"))
    monkeypatch.undo()
    assert everything(registry, library) == before and list(tmp_path.glob("*state*")) == []


@pytest.mark.parametrize("failing", ["save_file", "replace"])
def test_a_failure_while_keeping_the_new_model_keeps_everything(setup, monkeypatch, failing):
    import safetensors.torch

    registry, library = setup
    before = everything(registry, library)
    *_, finished = run_finetune(registry, library, FAST)
    if failing == "save_file":
        monkeypatch.setattr(safetensors.torch, "save_file", enospc)  # a full disk
    else:
        monkeypatch.setattr(os, "replace", enospc)  # the move into place never happens
    with pytest.raises(OSError, match="No space"):
        keep(registry, finished, activate=True)
    monkeypatch.undo()
    assert everything(registry, library) == before
    assert [p.name for p in registry.folder.iterdir() if p.name.startswith(".")] == []
