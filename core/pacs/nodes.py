"""Remote nodes: a DIMSE peer (AE title, host, port) or a DICOMweb base URL, and where they are kept.

The settings file is ``pacs.json`` in the user's config folder (``core.util.paths``)::

    {"timeout_s": 30, "calling_aet": "MTMR",
     "nodes": {"pacs": {"kind": "dimse", "aet": "ORTHANC", "host": "pacs.local", "port": 4242},
               "web": {"kind": "web", "url": "https://pacs.local/dicom-web", "auth": "bearer"}},
     "listener": {"aet": "MTMR", "port": 11112, "allowed": ["ORTHANC"], "max_mb": 20000}}

Secrets (a bearer token, a basic-auth password) are never in this file: ``core.pacs.credentials`` keeps
them by node name. A node may also be given inline: ``AET@HOST:PORT`` (DIMSE) or an ``http(s)://`` URL.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from core.pacs.errors import PacsError
from core.util.atomic import atomic_write_text
from core.util.paths import user_dir

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CALLING_AET = "MTMR"
SETTINGS_NAME = "pacs.json"
INLINE_DIMSE = re.compile(r"^(?P<aet>[^@]{1,16})@(?P<host>\[[^\]]+\]|[^:@]+):(?P<port>\d{1,5})$")
AUTH_KINDS = ("", "bearer", "basic")


@dataclass(frozen=True)
class DimseNode:
    """A DICOM peer reached by association: its AE title, host and port, and the title we call it with.

    ``tls`` turns on TLS; ``ca_file`` checks the server's certificate, ``cert_file``/``key_file`` is our
    client certificate (both optional)."""

    aet: str
    host: str
    port: int
    calling_aet: str = DEFAULT_CALLING_AET
    name: str = ""
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S
    kind: str = field(default="dimse", init=False)

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise PacsError(f"{self.label}: port {self.port} is not between 1 and 65535")
        for title in (self.aet, self.calling_aet):
            if not title.strip() or len(title) > 16 or "\\" in title or not title.isascii():
                raise PacsError(f"{self.label}: AE title {title!r} must be 1-16 ASCII characters")
        _check_timeout(self.label, self.timeout_s)

    @property
    def label(self) -> str:
        return self.name or f"{self.aet}@{self.host}:{self.port}"


@dataclass(frozen=True)
class WebNode:
    """A DICOMweb service: the base URL of QIDO-RS/WADO-RS/STOW-RS and how to authenticate.

    ``auth`` is "", "bearer" or "basic" (with ``username``); the token or password itself lives in
    ``core.pacs.credentials`` under the node's name and is passed here only in memory (``secret``)."""

    url: str
    name: str = ""
    auth: str = ""
    username: str = ""
    ca_file: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S
    secret: str = field(default="", repr=False, compare=False)
    kind: str = field(default="web", init=False)

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[^/\s]+", self.url):
            raise PacsError(f"{self.label}: a DICOMweb URL starts with http:// or https://")
        if self.auth not in AUTH_KINDS:
            raise PacsError(f"{self.label}: auth must be one of bearer, basic or empty, not {self.auth!r}")
        _check_timeout(self.label, self.timeout_s)

    @property
    def label(self) -> str:
        # never the URL's user:password part, should someone have written one into it
        return self.name or re.sub(r"//[^/@]*@", "//", self.url)


Node = DimseNode | WebNode


def _check_timeout(label: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0 < value <= 3600):
        raise PacsError(f"{label}: timeout {value!r} must be a number of seconds in (0, 3600]")


@dataclass
class Settings:
    """The PACS part of the user's settings: named nodes, defaults and the listener."""

    nodes: dict[str, Node] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT_S
    calling_aet: str = DEFAULT_CALLING_AET
    listener: dict = field(default_factory=dict)

    def to_json(self) -> str:
        nodes = {}
        for name, node in self.nodes.items():
            entry = {k: v for k, v in asdict(node).items() if k not in ("name", "secret")}
            nodes[name] = entry
        data = {
            "timeout_s": self.timeout_s,
            "calling_aet": self.calling_aet,
            "nodes": nodes,
            "listener": self.listener,
        }
        return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def settings_path() -> Path:
    return user_dir("config") / SETTINGS_NAME


def load_settings(path: Path | None = None) -> Settings:
    """The settings file, or the defaults when there is none; PacsError names the file and the problem."""
    path = settings_path() if path is None else Path(path)
    if not path.is_file():
        return Settings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        timeout = float(data.get("timeout_s", DEFAULT_TIMEOUT_S))
        calling = str(data.get("calling_aet", DEFAULT_CALLING_AET))
        nodes = {}
        for name, entry in dict(data.get("nodes", {})).items():
            nodes[name] = _node_from_entry(name, dict(entry), timeout, calling)
        listener = dict(data.get("listener", {}))
    except (OSError, ValueError, TypeError) as exc:
        raise PacsError(f"{path}: cannot be read as PACS settings ({exc})") from exc
    except PacsError as exc:
        raise PacsError(f"{path}: {exc}") from exc
    return Settings(nodes, timeout, calling, listener)


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    path = settings_path() if path is None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, settings.to_json())
    return path


def _node_from_entry(name: str, entry: dict, timeout: float, calling: str) -> Node:
    kind = entry.pop("kind", "dimse")
    entry.setdefault("timeout_s", timeout)
    known = {"dimse": DimseNode, "web": WebNode}
    if kind not in known:
        raise PacsError(f"node {name!r}: kind must be dimse or web, not {kind!r}")
    cls = known[kind]
    allowed = {f.name for f in fields(cls) if f.init} - {"name", "secret"}
    unknown = set(entry) - allowed
    if unknown:
        raise PacsError(f"node {name!r}: unknown setting(s) {', '.join(sorted(unknown))}")
    if cls is DimseNode:
        entry.setdefault("calling_aet", calling)
        entry["port"] = int(entry.get("port", 0))
    return cls(name=name, **entry)


def resolve(text: str, settings: Settings | None = None, timeout_s: float | None = None) -> Node:
    """A node by its name in the settings, or inline (``AET@HOST:PORT``, ``http(s)://...``), with its
    secret (if any) loaded from ``core.pacs.credentials``."""
    from dataclasses import replace

    from core.pacs import credentials

    settings = load_settings() if settings is None else settings
    if text in settings.nodes:
        node = settings.nodes[text]
    elif text.startswith(("http://", "https://")):
        node = WebNode(url=text, timeout_s=settings.timeout_s)
    elif match := INLINE_DIMSE.match(text):
        host = match["host"].strip("[]")
        node = DimseNode(
            match["aet"], host, int(match["port"]), settings.calling_aet, timeout_s=settings.timeout_s
        )
    else:
        known = ", ".join(sorted(settings.nodes)) or "none in the settings"
        raise PacsError(f"{text}: not a known node ({known}), AET@HOST:PORT or an http(s):// URL")
    if timeout_s is not None:
        node = replace(node, timeout_s=timeout_s)
    if isinstance(node, WebNode) and node.auth and node.name:
        node = replace(node, secret=credentials.load(node.name))
    return node
