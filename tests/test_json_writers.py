"""Every JSON the application writes is standard JSON: ``allow_nan=False`` on each ``json.dump(s)``.

Python's ``json`` writes NaN and Infinity by default, which no other JSON reader accepts; a NaN that
slipped through (a spoiled DICOM header, an undefined metric) must fail where it is written, not in
the next program that reads the file. Values that may legitimately be undefined are made ``null``
first (``core.util.json_safe.json_safe``).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Not interchange files: a training state's metadata inside its own safetensors file keeps -inf
# (no best AUC yet) and NaN metrics exactly as the trainer holds them, and only this module reads it.
EXEMPT = {"core/training/state.py"}


def json_writes_without_allow_nan_false(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative in EXEMPT:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in ("dump", "dumps") or getattr(node.func.value, "id", "") != "json":
                continue
            strict = any(
                k.arg == "allow_nan" and isinstance(k.value, ast.Constant) and k.value.value is False
                for k in node.keywords
            )
            if not strict:
                found.append(f"{relative}:{node.lineno}")
    return found


def test_every_json_writer_refuses_nan():
    offenders = [
        hit for package in ("core", "app") for hit in json_writes_without_allow_nan_false(REPO / package)
    ]
    assert offenders == [], "json.dump(s) without allow_nan=False: " + ", ".join(offenders)


def test_the_check_finds_a_lenient_writer(tmp_path, monkeypatch):
    monkeypatch.setattr("tests.test_json_writers.REPO", tmp_path)
    (tmp_path / "m.py").write_text("import json\njson.dumps(1)\njson.dump(1, f, allow_nan=False)\n")
    assert json_writes_without_allow_nan_false(tmp_path) == ["m.py:2"]
