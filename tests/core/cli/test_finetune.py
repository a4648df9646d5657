"""``python main.py finetune``: a run that keeps a version, its refusals, and a SIGKILL or a second run
that must never damage the active model, the model versions or the library."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.model.registry import ModelRegistry
from core.reading.library import Library
from main import main
from tests.core.reading.finetune.setup_helpers import everything, one_torch_thread, prepare  # noqa: F401 (autouse fixture)
from tests.core.reading.test_library import snapshot

REPO = Path(__file__).resolve().parents[3]


def start_run(args: list[str]) -> subprocess.Popen:
    """``main.py ARGS`` in its own process, returned once it has started its first epoch."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    line = ""
    while not line.startswith("epoch 1/"):
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=30)
            raise AssertionError(process.stderr.read())
    return process


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
    assert "Effect on your 2 held-out nodules" in text  # with its bootstrap interval, also in the JSON
    assert "effect" in json.loads((out / f"finetune-{versions[-1].id}.json").read_text())
    assert main([*args, "--activate", "--force"]) == 0
    assert registry.active().id == registry.versions()[-1].id
    assert snapshot(library.root) == before["library"]


def test_cli_offers_randomised_phantoms_and_augmentation_both_on_by_default():
    from main import build_parser

    args = build_parser().parse_args(["finetune", "--library"])
    assert args.randomise and args.augment
    args = build_parser().parse_args(["finetune", "--library", "--no-randomise", "--no-augment"])
    assert not args.randomise and not args.augment


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
    writer = start_run(args)
    try:
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


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
def test_a_second_cli_run_gets_its_own_state_and_never_takes_over_a_live_one(home, tmp_path, capsys):
    """Before, a second run on the default folder resumed the live first run's state (and then
    reported that model as its own, activated), or was refused over it."""
    registry, _ = home
    out = tmp_path / "out"
    args = ["finetune", "--library", "--batch-size", "8", "--device", "cpu", "--out", str(out)]
    first = start_run([*args, "--epochs", "30"])
    try:
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
