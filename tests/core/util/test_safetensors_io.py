"""Safetensors files with a JSON document: written atomically, read back checked, and every damaged or
foreign file refused with the file's own error, naming it and the reason; nothing is unpickled."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from safetensors.torch import save_file

from core.util.safetensors_io import (
    DocumentFormat,
    SafetensorsFileError,
    read_document,
    read_document_file,
    tensors_sha256,
    write_document_file,
)


class ThingError(SafetensorsFileError):
    pass


THING = DocumentFormat(
    key="thing",
    schema="test/thing/1",
    hash_key="sha",
    no_file="no such thing file",
    no_document="no thing in the file",
    not_json="the thing is not JSON",
    schema_name="thing schema",
    unreadable="thing tensors cannot be read",
    damaged="tensors do not match the hash (damaged or edited file)",
    error=ThingError,
)
TENSORS = {"b": torch.arange(6, dtype=torch.float32).reshape(2, 3), "a": torch.zeros(0)}


def write(path, tensors=TENSORS, **extra) -> dict:
    document = {"schema": THING.schema, "sha": tensors_sha256(tensors), **extra}
    write_document_file(path, tensors, THING, json.dumps(document, allow_nan=False))
    return document


def test_round_trip_and_no_temporary_file_left(tmp_path):
    path = tmp_path / "sub" / "t.safetensors"  # the folder is created
    document = write(path, note="x")
    assert read_document(path, THING) == document
    read, tensors = read_document_file(path, THING)
    assert read == document and set(tensors) == {"a", "b"} and torch.equal(tensors["b"], TENSORS["b"])
    assert [p.name for p in path.parent.iterdir()] == ["t.safetensors"]


def test_names_are_renamed_before_the_hash_is_checked(tmp_path):
    path = tmp_path / "t.safetensors"
    write(path, {"module.w": torch.ones(2)}, sha=tensors_sha256({"w": torch.ones(2)}))
    _, tensors = read_document_file(path, THING, rename=lambda name: name.removeprefix("module."))
    assert set(tensors) == {"w"}


def test_the_hash_covers_names_dtypes_and_values_not_order():
    same = {"a": TENSORS["a"], "b": TENSORS["b"].clone()}
    assert tensors_sha256(same) == tensors_sha256(TENSORS)
    assert tensors_sha256({**TENSORS, "b": TENSORS["b"] + 1}) != tensors_sha256(TENSORS)
    assert tensors_sha256({**TENSORS, "b": TENSORS["b"].double()}) != tensors_sha256(TENSORS)
    assert tensors_sha256({"c": TENSORS["b"], "a": TENSORS["a"]}) != tensors_sha256(TENSORS)


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "t.safetensors"
    write(path, note="first")
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", fail)
    with pytest.raises(OSError, match="No space"):
        write(path, note="second")
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["t.safetensors"]


def test_missing_unreadable_foreign_and_damaged_files_are_refused_naming_them(tmp_path):
    path = tmp_path / "t.safetensors"
    cases = []
    cases.append(("no such thing file", None))
    cases.append(("not a readable safetensors file", lambda: path.write_bytes(b"\x80\x04 a pickle")))
    cases.append(("no thing in the file", lambda: save_file(dict(TENSORS), str(path))))
    cases.append(("the thing is not JSON", lambda: save_file(dict(TENSORS), str(path), {"thing": "{"})))
    cases.append(("thing schema 'other', expected 'test/thing/1'", lambda: write(path, schema="other")))
    cases.append(
        ("thing schema None, expected", lambda: save_file(dict(TENSORS), str(path), {"thing": "[]"}))
    )

    def tamper():
        write(path)
        blob = bytearray(path.read_bytes())
        blob[-4] ^= 0xFF  # inside the last tensor's values: the header still reads
        path.write_bytes(bytes(blob))

    cases.append(("tensors do not match the hash", tamper))
    for reason, make in cases:
        path.unlink(missing_ok=True)
        if make is not None:
            make()
        with pytest.raises(ThingError, match=rf"t\.safetensors: {reason}") as caught:
            read_document_file(path, THING)
        assert caught.value.path == path and caught.value.reason.startswith(reason.split(" '")[0])


def test_the_data_is_synced_before_it_replaces_the_previous_file(tmp_path, monkeypatch):
    """Review: models and training states were renamed over the previous file unsynced (unlike
    ``core.util.atomic``): after a power cut the new name could hold an empty file."""
    import os

    path = tmp_path / "t.safetensors"
    events = []
    real_replace = os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.fstat(fd).st_ino)))
    monkeypatch.setattr(
        os, "replace", lambda a, b: events.append(("replace", os.stat(a).st_ino)) or real_replace(a, b)
    )
    write(path)
    assert events and events[0][0] == "fsync"
    replaced = next(inode for kind, inode in events if kind == "replace")
    assert events[0][1] == replaced  # the temporary file itself, before the rename


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permission bits")
def test_a_rewrite_keeps_the_files_permissions_and_a_new_file_gets_a_plain_files(tmp_path):
    path = tmp_path / "shared.safetensors"
    mask = os.umask(0o022)
    try:
        write_document_file(path, TENSORS, THING, json.dumps({"schema": THING.schema}))
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # safetensors alone writes 0600
        path.chmod(0o640)  # a site's own choice survives a rewrite (calibrate, --record)
        write_document_file(path, TENSORS, THING, json.dumps({"schema": THING.schema, "n": 2}))
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        fresh = tmp_path / "new.safetensors"  # a run killed before left its 0600 temporary file behind
        leftover = fresh.with_name(f".{fresh.name}.{os.getpid()}.tmp")
        leftover.write_bytes(b"")
        leftover.chmod(0o600)
        write_document_file(fresh, TENSORS, THING, json.dumps({"schema": THING.schema}))
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644 and not leftover.exists()
        fresh.unlink()
    finally:
        os.umask(mask)
    assert [p.name for p in tmp_path.iterdir()] == ["shared.safetensors"]
