"""What a send did, object by object, and the send log that keeps it.

Each object sent gets a ``SendResult``: success, warning or failure, with the DICOM status code (C-STORE)
or the HTTP status and the STOW-RS failure reason, and the reason in words. ``append`` adds one JSON
line per object to ``send-log.jsonl`` in the user's data folder: when, which node, which file and SOP
Instance UID, the outcome. The log names files and UIDs only, never the patient, and never a secret.
Sending only reads the local files: a failed send leaves them as they were, ready to be sent again.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from core.util.paths import user_dir

SUCCESS, WARNING, FAILURE = "success", "warning", "failure"
LOG_NAME = "send-log.jsonl"


@dataclass(frozen=True)
class SendResult:
    path: str
    sop_uid: str
    outcome: str
    status: int | None = None
    reason: str = ""

    @property
    def text(self) -> str:
        code = "" if self.status is None else f" (status 0x{self.status:04X})"
        why = f": {self.reason}" if self.reason else ""
        return f"{self.outcome}{code}: {self.path}{why}"


def dimse_outcome(status: int | None) -> str:
    """C-STORE status classes (PS3.4 B.2.3): 0000 success; B000, B006, B007 warning; anything else failure."""
    if status == 0x0000:
        return SUCCESS
    if status in (0xB000, 0xB006, 0xB007) or (status is not None and 0x0001 <= status <= 0x00FF):
        return WARNING
    return FAILURE


def read_for_sending(path: Path):
    """(data set, "") or (None, why the file cannot be sent) before anything goes on the wire."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(path)
        ds.SOPInstanceUID, ds.SOPClassUID, ds.file_meta.TransferSyntaxUID  # noqa: B018 (what sending needs)
        return ds, ""
    except InvalidDicomError:
        return None, "not a DICOM file"
    except IsADirectoryError:
        return None, "is a folder"
    except FileNotFoundError:
        return None, "no such file"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or type(exc).__name__})"
    except (AttributeError, KeyError):
        return None, "not a DICOM object that can be sent (no SOP class, instance UID or transfer syntax)"


def log_path() -> Path:
    return user_dir("data") / LOG_NAME


def append(node_label: str, results: list[SendResult], path: Path | None = None) -> Path:
    """Append one line per result; the line is written whole in one call (O_APPEND) so two writers never
    interleave within a line."""
    path = log_path() if path is None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    lines = "".join(
        json.dumps({"time": stamp, "node": node_label, **asdict(r)}, ensure_ascii=False, allow_nan=False)
        + "\n"
        for r in results
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, lines.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return path
