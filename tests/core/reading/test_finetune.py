"""Fine-tuning from the library: the split by study, the side-by-side comparison, the whole run and the
CLI, and the failures (cancel, crash, full disk, failed move, SIGKILL) that must never damage the active
model, the model versions or the library."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import core.reading.finetune
import core.training.trainer
from core.model.patches import PatchConfig
from core.model.registry import ModelRegistry
from core.nodule.labels import NoduleLabel
from core.reading.finetune import (
    FinetuneError,
    FinetuneOptions,
    build_finetune_data,
    compare,
    format_comparison,
    keep,
    not_worse,
    run_finetune,
    split_by_study,
)
from core.reading.library import Library
from core.training.data import subset
from core.training.trainer import TrainingCancelled
from main import main
from tests.core.model.test_registry import card, make_registry, tiny_model
from tests.core.reading.test_library import PATCH, enospc, fill, snapshot, study_nodules, study_volume
from tests.core.training.fake_data import fake_dataset

REPO = Path(__file__).resolve().parents[3]
FAST = FinetuneOptions(epochs=2, batch_size=8, device="cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a busy 2-core machine two threads wait on each other (100x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def everything(registry: ModelRegistry, library: Library) -> dict:
    """What no failure may change: the active model's id and bytes, every version, the library's files."""
    active = registry.active()
    return {
        "active": (active.id, active.note, sha(active.path)),
        "versions": [(v.id, sha(v.path)) for v in registry.versions()],
        "library": snapshot(library.root),
    }


def prepare(registry: ModelRegistry, library: Library, studies: int = 4) -> None:
    base = registry.add(tiny_model(1), card("tiny-base", threshold=0.5, version="1"))
    registry.activate(base.id)
    fill(library, studies)


@pytest.fixture
def setup(tmp_path):
    registry, library = make_registry(tmp_path), Library(tmp_path / "labels")
    prepare(registry, library)
    return registry, library


def test_the_cli_defaults_are_the_fine_tuning_defaults():
    from core.cli.finetune import _DEFAULTS

    defaults = FinetuneOptions()
    for name in ("epochs", "lr", "trunk_lr_factor", "batch_size", "val_fraction", "seed", "device"):
        assert getattr(_DEFAULTS, name) == getattr(defaults, name), name
    config = defaults.train_config(0.3)
    assert config.lr < 3e-3 and config.trunk_lr_factor == 0.1 and config.threshold == 0.3


# -- data --------------------------------------------------------------------------------------------


def test_the_library_is_split_by_study_with_a_fixed_seed(setup):
    _, library = setup
    train, val, description = build_finetune_data(library, PATCH, seed=0)
    assert set(train.patient_ids) & set(val.patient_ids) == set()
    assert len(set(val.patient_ids)) == 1 and len(set(train.patient_ids)) == 3
    assert len(train.labels) + len(val.labels) == 8 and sorted(val.labels.tolist()) == [0, 1]
    assert description["val_studies"] == sorted(set(val.patient_ids.tolist()))
    assert description["phantom_nodules"] == 0 and description["val_labels"] == {
        "malignant": 1,
        "benign": 1,
        "unrated": 0,
    }
    again = build_finetune_data(library, PATCH, seed=0)
    assert again.description == description
    np.testing.assert_array_equal(again.train.patches, train.patches)
    assert (
        len({tuple(build_finetune_data(library, PATCH, seed=s).description["val_studies"]) for s in range(8)})
        > 1
    )
    assert "held out" in core.reading.finetune.describe(description)


def test_the_split_prefers_both_classes_in_the_held_out_part():
    data = fake_dataset(24)  # one nodule per patient: 12 malignant, 11 benign, 1 indeterminate
    data.patient_ids[:] = [f"S{n // 6}" for n in range(24)]  # four studies...
    data.labels[:12] = 1  # ...the first two malignant only
    data.labels[12:23] = 0
    for seed in range(5):
        train, val = split_by_study(data, val_fraction=0.5, seed=seed)
        labels = set(data.labels[np.isin(data.patient_ids, val)].tolist()) - {-1}
        assert labels == {0, 1} and not set(train) & set(val)
    part = subset(data, np.isin(data.patient_ids, ["S1"]))
    assert len(part.labels) == 6 and part.nodule_index.max() == 5 and len(part.patches) == 18


def test_too_few_labelled_studies_stop_with_the_reason(tmp_path):
    library = Library(tmp_path)
    fill(library, studies=1)
    only_indeterminate = replace(study_nodules(2)[0], label=NoduleLabel(3.0))  # nothing to learn from
    library.add(study_volume(2), only_indeterminate, PATCH)
    with pytest.raises(FinetuneError, match=r"2 usable labelled nodules from 1 study.*at least 2 studies"):
        build_finetune_data(library, PATCH)


def test_phantoms_are_mixed_into_training_only(setup, monkeypatch):
    _, library = setup
    phantoms = fake_dataset(10)
    monkeypatch.setattr(core.reading.finetune, "phantom_train_data", lambda patch, progress=None: phantoms)
    train, val, description = build_finetune_data(library, PATCH, with_phantoms=True)
    assert description["phantom_nodules"] == 10 and len(train.labels) == description["train_nodules"] + 10
    assert not any(p.startswith("LIDC") for p in val.patient_ids) and len(val.labels) == 2
    assert "10 phantom nodules" in core.reading.finetune.describe(description)


# -- comparing ---------------------------------------------------------------------------------------


def test_compare_is_nan_aware_and_side_by_side():
    data = fake_dataset(12, size=32)
    benign_only = subset(data, data.labels == 0)
    benign_only.attributes[:] = np.nan  # nothing rated
    models = {"active": tiny_model(1), "new": tiny_model(2)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compare(models, benign_only, "cpu", {"active": 0.5, "new": 0.4})
        mixed = compare(models, data, "cpu")
    assert np.isnan(result["new"]["auc"]) and np.isnan(result["new"]["sensitivity"])
    assert np.isnan(result["new"]["attributes"]["mean_mae"]) and result["new"]["threshold"] == 0.4
    assert 0 <= result["new"]["specificity"] <= 1 and result["active"]["n"] == 6
    table = format_comparison(result)
    assert table.splitlines()[0].split() == ["active", "new"] and "AUC" in table and " -" in table
    assert 0 <= mixed["active"]["auc"] <= 1 and not np.isnan(mixed["active"]["attributes"]["mean_mae"])
    assert mixed["new"]["nonfinite_outputs"] == 0


def test_not_worse_compares_auc_then_accuracy_and_attributes():
    def metrics(auc, accuracy=0.5, mae=1.0):
        return {"auc": auc, "accuracy": accuracy, "attributes": {"mean_mae": mae}}

    assert not_worse({"new": metrics(0.8), "active": metrics(0.8)}) == (True, "")
    ok, why = not_worse({"new": metrics(0.7), "active": metrics(0.8)})
    assert not ok and "AUC 0.700 < 0.800" in why
    assert not not_worse({"new": metrics(np.nan, 0.4), "active": metrics(np.nan, 0.6)})[0]
    assert "cannot be computed" in not_worse({"new": metrics(np.nan, 0.7), "active": metrics(0.9, 0.6)})[1]
    broken = metrics(0.9) | {"nonfinite_outputs": 3}
    assert "3 outputs are not numbers" in not_worse({"new": broken, "active": metrics(0.8)})[1]
    assert not not_worse({"new": metrics(0.9, mae=1.2), "active": metrics(0.8, mae=1.0)})[0]
    assert not_worse({"new": metrics(0.9, mae=np.nan), "active": metrics(0.8, mae=1.0)})[0]


# -- the run -----------------------------------------------------------------------------------------


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

    def crashing(batch, rng):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated crash in a training step")
        return real(batch, rng)

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


# -- the CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path):
    """The default registry (real demo, tiny active version) and library of the test's user folder."""
    registry, library = ModelRegistry(), Library()
    prepare(registry, library)
    return registry, library


def test_cli_finetunes_keeps_a_version_and_activates_only_when_asked(home, tmp_path, capsys):
    registry, library = home
    before = everything(registry, library)
    out = tmp_path / "out"
    args = [
        "finetune",
        "--library",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "starting from tiny-base 1" in text and "held out to check" in text
    assert "active" in text and "new" in text and "AUC" in text and "not activated" in text
    versions = registry.versions()
    assert len(versions) == len(before["versions"]) + 1 and registry.active().id == before["active"][0]
    assert not (out / "finetune.state.safetensors").exists() and not (out / "finetune.run.json").exists()
    assert (out / f"finetune-{versions[-1].id}.json").is_file()
    assert main([*args, "--activate", "--force"]) == 0
    assert registry.active().id == registry.versions()[-1].id
    assert snapshot(library.root) == before["library"]


def test_cli_refuses_without_data_with_too_few_studies_or_over_an_unfinished_run(tmp_path, capsys):
    registry, library = ModelRegistry(), Library()
    prepare(registry, library, studies=1)
    assert main(["finetune"]) == 2 and "--library" in capsys.readouterr().err
    assert main(["finetune", "--library", "--out", str(tmp_path)]) == 2
    assert "at least 2 studies" in capsys.readouterr().err
    (tmp_path / "finetune.state.safetensors").write_bytes(b"x")
    assert main(["finetune", "--library", "--out", str(tmp_path)]) == 2
    assert "--continue" in capsys.readouterr().err
    assert main(["finetune", "--library", "--continue", "--out", str(tmp_path / "none")]) == 2
    assert "nothing to continue" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_during_a_cli_run_keeps_everything_and_the_run_continues(home, tmp_path, capsys):
    registry, library = home
    before = everything(registry, library)
    out = tmp_path / "out"
    args = [
        "finetune",
        "--library",
        "--epochs",
        "30",  # 6 at least (patience 5): the kill comes while it trains
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    writer = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        line = ""
        while not line.startswith("epoch 1/"):
            line = writer.stdout.readline()
            assert line, writer.stderr.read()
        time.sleep(random.Random(3).uniform(0.0, 0.05))
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        writer.stdout.close()
        writer.stderr.close()
    after = everything(registry, library)
    assert after["active"] == before["active"] and after["library"] == before["library"]
    for version in registry.versions():  # a version saved just before the kill is whole
        registry.load(version.id)
    assert after["versions"] == before["versions"]  # killed while training: nothing kept yet...
    assert main([*args, "--continue"]) == 0  # ...and the run goes on from its last epoch
    assert "continuing from" in capsys.readouterr().out
    assert everything(registry, library)["active"] == before["active"]
    assert len(registry.versions()) == len(before["versions"]) + 1


def test_one_study_with_phantoms_holds_out_the_phantom_validation_split(tmp_path, monkeypatch):
    from tests.core.reading.test_library import PATCH, fill

    library = Library(tmp_path / "labels")
    fill(library, studies=1)
    size = PATCH.size
    phantoms = fake_dataset(nodules=40, size=size)
    val = fake_dataset(nodules=10, size=size, seed=3)
    monkeypatch.setattr(core.reading.finetune, "phantom_train_data", lambda patch, progress=None: phantoms)
    monkeypatch.setattr(core.reading.finetune, "phantom_val_data", lambda patch, progress=None: val)
    with pytest.raises(FinetuneError, match="mix in the phantom"):
        build_finetune_data(library, PATCH)
    data = build_finetune_data(library, PATCH, with_phantoms=True)
    d = data.description
    assert d["val_studies"] == ["phantom validation split"] and d["val_nodules"] == 10
    # 2 library nodules repeated to weigh about a tenth of 40 phantom nodules: twice.
    assert d["library_repeats"] == 2 and len(data.train.labels) == 2 * 2 + 40
    assert "phantom validation split held out" in core.reading.finetune.describe(d)


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
def test_a_second_cli_run_gets_its_own_state_and_never_takes_over_a_live_one(home, tmp_path, capsys):
    """Before, a second run on the default folder resumed the live first run's state (and then
    reported that model as its own, activated), or was refused over it."""
    registry, _ = home
    out = tmp_path / "out"
    args = ["finetune", "--library", "--batch-size", "8", "--device", "cpu", "--out", str(out)]
    first = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), *args, "--epochs", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        line = ""
        while not line.startswith("epoch 1/"):
            line = first.stdout.readline()
            assert line, first.stderr.read()
        first.send_signal(signal.SIGSTOP)  # alive, holding its run, its state on disk
        state = out / "finetune.state.safetensors"
        held = state.read_bytes()
        assert main([*args, "--epochs", "30", "--continue"]) == 2  # its state is not this run's
        assert "nothing to continue" in capsys.readouterr().err
        assert main([*args, "--epochs", "2", "--activate", "--force"]) == 0
        text = capsys.readouterr().out
        assert "finetune-2.state.safetensors" in text and "continuing" not in text
        active = registry.active()
        assert f"activated {active.id} ({active.label})" in text  # the model this run made
        assert active.card["training"]["epochs"] == 2
        assert state.read_bytes() == held and not (out / "finetune-2.state.safetensors").exists()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        first.stdout.close()
        first.stderr.close()
    from core.training.state import claim_run

    dead = claim_run(out, "finetune", continuing=True)  # killed, its run is the one to continue
    assert dead is not None and dead.state == state
    dead.release()
