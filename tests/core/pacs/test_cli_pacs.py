"""``python main.py pacs ...`` against the real Orthanc: results on stdout, one-line reasons and the exit
codes on failure (never a traceback), ``listen`` until interrupted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pydicom

from main import main
from tests.core.pacs.conftest import CT_SLICES
from tests.core.pacs.orthanc_server import free_port
from tests.dicom_factory import write_series

REPO = Path(__file__).resolve().parents[3]


def one_line_error(err: str) -> bool:
    lines = err.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err


def test_echo(orthanc, capsys):
    assert main(["pacs", "echo", orthanc.inline]) == 0
    assert "reachable" in capsys.readouterr().out
    assert main(["pacs", "echo", orthanc.web_url]) == 0


def test_echo_failures_are_one_line(orthanc, capsys):
    assert main(["pacs", "echo", f"WRONG@127.0.0.1:{orthanc.dicom_port}"]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err) and "rejected" in err
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["pacs", "echo", f"X@127.0.0.1:{port}", "--timeout", "3"]) == 1
    assert one_line_error(capsys.readouterr().err)
    assert main(["pacs", "echo", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert one_line_error(err) and "not a known node" in err
    assert main(["pacs", "echo", orthanc.inline, "--timeout", "-1"]) == 2
    assert one_line_error(capsys.readouterr().err)


def test_find_json_and_table(orthanc, demo, capsys):
    assert (
        main(["pacs", "find", orthanc.inline, "--patient-id", "PACS-001", "--date", "20260101-", "--json"])
        == 0
    )
    found = json.loads(capsys.readouterr().out)
    assert [s["study_uid"] for s in found["studies"]] == [demo.study_uid] and found["limited"] is False
    assert main(["pacs", "find", orthanc.web_url, "--patient", "Pacs*"]) == 0
    assert demo.study_uid in capsys.readouterr().out
    assert main(["pacs", "find", orthanc.inline, "--date", "2026-13-01"]) == 2
    assert one_line_error(capsys.readouterr().err)


def test_series_and_get(orthanc, demo, tmp_path, capsys):
    assert main(["pacs", "series", orthanc.inline, demo.study_uid]) == 0
    out = capsys.readouterr().out
    assert f"CT {demo.ct_series}" in out and f"-- {demo.other_series}" in out
    assert (
        main(
            [
                "pacs",
                "get",
                orthanc.inline,
                demo.study_uid,
                "--series",
                demo.ct_series,
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == str(tmp_path / demo.study_uid)
    assert len(list(tmp_path.rglob("*.dcm"))) == CT_SLICES
    assert main(["pacs", "get", orthanc.inline, "1.2.3.4.5", "--out", str(tmp_path)]) == 1
    assert one_line_error(capsys.readouterr().err)
    assert main(["pacs", "get", orthanc.inline, "not-a-uid", "--out", str(tmp_path)]) == 1
    assert one_line_error(capsys.readouterr().err)


def test_get_into_the_study_cache_by_default(orthanc, demo, capsys):
    assert main(["pacs", "get", orthanc.web_url, demo.study_uid, "--series", demo.other_series]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder.parent.name == "studies" and len(list(folder.rglob("*.dcm"))) == 2


def test_send_reports_each_object_and_fails_when_one_fails(orthanc, tmp_path, capsys):
    good = write_series(tmp_path / "s", 1)[0]
    bad = tmp_path / "bad.dcm"
    bad.write_text("not dicom")
    assert main(["pacs", "send", orthanc.inline, str(good)]) == 0
    assert capsys.readouterr().out.startswith("success")
    assert main(["pacs", "send", orthanc.inline, str(good), str(bad)]) == 1
    printed = capsys.readouterr()
    assert printed.out.splitlines()[1].startswith("failure") and "not sent" in printed.err
    assert bad.read_text() == "not dicom"


def listen(port: int, out: Path, *extra: str) -> subprocess.Popen:
    """``python main.py pacs listen`` in its own process, its output piped."""
    command = [
        sys.executable,
        str(REPO / "main.py"),
        "pacs",
        "listen",
        "--port",
        str(port),
        "--out",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [*command, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def test_listen_receives_a_push_until_interrupted(tool, tmp_path):
    port = free_port()
    listener = listen(port, tmp_path, "--allow", "PUSHER")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        path = write_series(tmp_path / "pushed", 1)[0]
        pushed = subprocess.run(
            [tool("storescu"), "-aet", "PUSHER", "-aec", "MTMR", "127.0.0.1", str(port), str(path)],
            capture_output=True,
            timeout=30,
        )
        assert pushed.returncode == 0
    finally:
        listener.send_signal(signal.SIGINT)
        out, err = listener.communicate(timeout=30)
    assert listener.returncode == 0, err
    ds = pydicom.dcmread(path)
    assert out.strip().endswith(f"{ds.SOPInstanceUID}.dcm") and "1 instance(s) received" in err


def test_listen_stops_on_ctrl_c_while_a_caller_holds_a_silent_connection(tmp_path):
    """A connection that says nothing (as the port probe above makes) kept its association thread, and
    so the process, alive after Ctrl+C until the caller left or the ACSE timeout passed (30 s)."""
    port = free_port()
    listener = listen(port, tmp_path)
    silent = None
    try:
        deadline = time.monotonic() + 30
        while silent is None and time.monotonic() < deadline:
            try:
                silent = socket.create_connection(("127.0.0.1", port), timeout=1)
            except OSError:
                time.sleep(0.2)
        assert silent is not None, "the listener never listened"
        time.sleep(1.0)  # its association is set up and waiting for our request
        listener.send_signal(signal.SIGINT)
        _out, err = listener.communicate(timeout=8)  # well inside the 10 s ACSE timeout
    finally:
        if silent is not None:
            silent.close()
        if listener.poll() is None:
            listener.kill()
            listener.communicate()
    assert listener.returncode == 0, err
    assert "0 instance(s) received" in err


def test_listen_on_a_port_in_use_is_one_line(capsys):
    with socket.socket() as sock:
        sock.bind(("", 0))
        sock.listen()
        assert main(["pacs", "listen", "--port", str(sock.getsockname()[1])]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err) and "cannot listen" in err


def test_get_interrupted_exits_130_keeps_what_arrived_and_resumes(
    orthanc, demo, tmp_path, capsys, monkeypatch
):
    from core.cli.progress import Progress

    calls = []
    real = Progress.status

    def interrupt_third(self, text, **kwargs):
        calls.append(text)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(self, text, **kwargs)

    monkeypatch.setattr(Progress, "status", interrupt_third)
    command = [
        "pacs",
        "get",
        orthanc.inline,
        demo.study_uid,
        "--series",
        demo.ct_series,
        "--out",
        str(tmp_path),
    ]
    started = time.monotonic()
    assert main([*command, "--timeout", "20"]) == 130
    # the association is aborted, not released: a release would wait for the server up to the timeout
    assert time.monotonic() - started < 20
    assert "run the same command again to resume" in capsys.readouterr().err
    kept = len(list(tmp_path.rglob("*.dcm")))  # (all of them when the interrupt came after the last)
    assert 1 <= kept <= CT_SLICES
    monkeypatch.setattr(Progress, "status", real)
    assert main(command) == 0
    assert f"{CT_SLICES - kept} received, {kept} already there" in capsys.readouterr().err
