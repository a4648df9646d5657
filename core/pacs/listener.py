"""Receive: a storage SCP (the "listener") a PACS or a modality can push studies to.

It answers C-ECHO and C-STORE for the storage SOP classes, under our AE title on a port from the
settings. Only calling AE titles on ``allowed`` may associate (an empty list allows any: say so in the
settings); others are rejected at association. Each arriving instance is written atomically into the
study cache (``core.pacs.storage``: ``<study>/<series>/<SOP instance>.dcm``); one already there is
acknowledged and not written twice. When the folder would grow past ``max_bytes`` the instance is
refused with status A700 (out of resources) and nothing is written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE, StoragePresentationContexts, build_context, evt
from pynetdicom.sop_class import Verification

from core.pacs import storage
from core.pacs.dimse import STORAGE_SYNTAXES

OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
DEFAULT_PORT = 11112


@dataclass
class Listener:
    """Settings of the storage SCP; ``start()`` returns the running server (``shutdown()`` stops it)."""

    aet: str = "MTMR"
    port: int = DEFAULT_PORT
    root: Path = field(default_factory=storage.study_cache)
    allowed: Sequence[str] = ()
    max_bytes: int = 20 * 1024**3
    host: str = ""  # every interface; "127.0.0.1" for this machine only
    on_arrival: Callable[[Path], None] | None = None
    received: int = 0

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self._lock = threading.Lock()
        self._used: int | None = None

    def _store(self, event) -> int:
        try:
            ds: Dataset = event.dataset
            path = storage.instance_path(
                self.root, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
            )
        except (AttributeError, ValueError, KeyError):
            return CANNOT_UNDERSTAND
        if path.is_file():
            return 0x0000  # already here: acknowledged, not written twice
        encoded = event.encoded_dataset()
        with self._lock:
            if self._used is None:
                self._used = storage.used_bytes(self.root)
            if self._used + len(encoded) > self.max_bytes:
                return OUT_OF_RESOURCES
            try:
                storage.write_encoded(path, encoded)
            except OSError:
                return OUT_OF_RESOURCES
            self._used += len(encoded)
            self.received += 1
        if self.on_arrival is not None:
            self.on_arrival(path)
        return 0x0000

    def start(self, block: bool = False):
        """Listen (in threads); ``block=True`` serves until interrupted (KeyboardInterrupt ends it).
        OSError when the port cannot be used."""
        ae = AE(ae_title=self.aet)
        ae.supported_contexts = [
            build_context(cx.abstract_syntax, STORAGE_SYNTAXES) for cx in StoragePresentationContexts
        ]
        ae.add_supported_context(Verification)
        ae.require_calling_aet = [a for a in self.allowed if a]
        ae.maximum_pdu_size = 0
        ae.acse_timeout = 10  # a caller that connects and says nothing is dropped, not waited on
        ae.network_timeout = 60
        handlers = [(evt.EVT_C_STORE, self._store)]
        return ae.start_server((self.host, self.port), block=block, evt_handlers=handlers)


def stop(server) -> None:
    """Stop a server ``Listener.start`` returned: no new callers, and the associations still open
    aborted, since their threads would otherwise keep the process alive until their peers leave or
    time out (a caller that connected and said nothing held ``pacs listen`` 30 s after Ctrl+C); one
    that has not yet asked for an association has its connection closed instead."""
    server.shutdown()
    for association in list(server.active_associations):
        state = association.dul.state_machine.current_state
        if state in ("Sta1", "Sta2"):
            # connected (Sta1: its connection not yet taken up) but nothing requested yet, as a port
            # probe: an A-ABORT has no place there (pynetdicom raised InvalidEventError in its
            # thread); closing the connection ends it
            association.dul.socket.close()
        elif state != "Sta13":  # Sta13: its connection is closing already
            association.abort()
