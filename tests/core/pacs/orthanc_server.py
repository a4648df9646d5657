"""A real Orthanc on loopback ports with a temporary configuration and storage, for tests and the bench.

``OrthancServer(folder)`` writes ``orthanc.json`` into ``folder`` (storage and index there too), finds
free ports, and ``start()`` runs ``Orthanc orthanc.json`` until ``GET /system`` answers. ``kill()``
stops it at once (SIGKILL, a server dying mid-transfer); ``start()`` again reopens the same storage.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
AET = "ORTHANC"


def orthanc_binary() -> str | None:
    return shutil.which("Orthanc") or (shutil.which("Orthanc", path="/usr/sbin:/usr/local/sbin"))


def missing_reason() -> str:
    """Why a real Orthanc cannot be run here ("" when it can)."""
    if orthanc_binary() is None:
        return "Orthanc is not installed (sh scripts/system-packages.sh installs orthanc, orthanc-dicomweb)"
    if not Path(PLUGIN).is_file():
        return f"the Orthanc DICOMweb plugin is missing ({PLUGIN}; apt-get install orthanc-dicomweb)"
    return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OrthancServer:
    def __init__(self, folder: Path, check_called_aet: bool = True, **extra) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.http_port, self.dicom_port = free_port(), free_port()
        self.config = self.folder / "orthanc.json"
        config = {
            "Name": "mtmr-test",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": AET,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": check_called_aet,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "DefaultEncoding": "Utf8",
            "StorageCompression": False,
            "Plugins": [PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "HttpTimeout": 30,
            **extra,
        }
        self.config.write_text(json.dumps(config, indent=2))
        self.process: subprocess.Popen | None = None
        self.log = self.folder / "orthanc.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def web_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def inline(self) -> str:
        return f"{AET}@127.0.0.1:{self.dicom_port}"

    def start(self, timeout_s: float = 20.0) -> OrthancServer:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [orthanc_binary(), str(self.config)], stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}; see {self.log}")
            try:
                self.rest("GET", "/system")
                return self
            except urllib.error.HTTPError:  # it answers (401 when it asks for a password)
                return self
            except OSError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"Orthanc did not answer within {timeout_s:g} s; see {self.log}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def rest(self, method: str, path: str, data: bytes | None = None, raw: bool = False):
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
        return body if raw else json.loads(body or b"null")

    def upload(self, paths) -> list[str]:
        """POST each file to /instances; the Orthanc instance ids."""
        return [self.rest("POST", "/instances", Path(p).read_bytes())["ID"] for p in paths]

    def instance_file(self, sop_uid: str) -> bytes:
        """The stored file of the instance with this SOP Instance UID, as Orthanc keeps it."""
        found = self.rest("POST", "/tools/lookup", sop_uid.encode())
        ids = [f["ID"] for f in found if f["Type"] == "Instance"]
        if not ids:
            raise KeyError(sop_uid)
        return self.rest("GET", f"/instances/{ids[0]}/file", raw=True)
