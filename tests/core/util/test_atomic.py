"""Atomic writes replace the whole file or nothing; ``fsync_folder`` never fails a write that is done."""

from __future__ import annotations

from core.util.atomic import atomic_write_text, fsync_folder


def test_a_write_replaces_the_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_fsync_folder_skips_what_it_cannot_open(tmp_path):
    fsync_folder(tmp_path)  # a folder: synced
    fsync_folder(tmp_path / "missing")  # nothing to open: skipped, no error
