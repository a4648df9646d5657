"""DIMSE with pynetdicom: association set-up and its failures in words, C-ECHO and C-FIND (study root).

Every association uses the node's timeout for the TCP connection, the association answer and each
DIMSE message, so a closed port or a silent server fails within it. When an association cannot be
made, ``why_not`` says why in one line: refused (nothing listens), rejected by the peer (with the
peer's reason, such as an unknown called AE title), timeout, or a TLS failure. Retrieval (C-GET) and
sending (C-STORE) are ``core.pacs.transfer``'s.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable

from pydicom import uid
from pydicom.dataset import Dataset
from pynetdicom import AE, build_context
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

from core.pacs.errors import PacsError
from core.pacs.nodes import DimseNode
from core.pacs.query import SERIES_KEYS, STUDY_KEYS, Found, Query, SeriesInfo, series_from, study_from

# What we take in a C-GET and in the listener: uncompressed, and the compressed syntaxes a PACS keeps CT
# in, so that it sends them as stored rather than transcoding (a short list: proposing every syntax
# pynetdicom knows for 120 SOP classes costs most of a second per association).
STORAGE_SYNTAXES = [
    uid.ExplicitVRLittleEndian,
    uid.ImplicitVRLittleEndian,
    uid.JPEGLosslessSV1,
    uid.JPEGLSLossless,
    uid.JPEG2000Lossless,
    uid.RLELossless,
    uid.JPEGBaseline8Bit,
    uid.JPEG2000,
]


def ssl_context(node: DimseNode) -> ssl.SSLContext:
    """The client TLS context: the node's CA file (else the system's), our certificate when given."""
    try:
        context = ssl.create_default_context(cafile=node.ca_file or None)
        if node.cert_file:
            context.load_cert_chain(node.cert_file, node.key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise PacsError(f"{node.label}: TLS files cannot be used ({_reason(exc)})") from exc
    return context


def _reason(exc: BaseException) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__


def why_not(node: DimseNode, timeout_s: float | None = None) -> str:
    """Why no association could be made, found with a plain connection (and a TLS handshake); "" when
    both work (the trouble is then in the association itself)."""
    timeout = node.timeout_s if timeout_s is None else timeout_s
    try:
        with socket.create_connection((node.host, node.port), timeout=timeout) as sock:
            if node.tls:
                try:
                    with ssl_context(node).wrap_socket(sock, server_hostname=node.host):
                        pass
                except (ssl.SSLError, ConnectionError) as exc:
                    return f"TLS failure ({_reason(exc)})"
    except TimeoutError:
        return f"timeout: no answer within {timeout:g} s"
    except ConnectionRefusedError:
        return f"connection refused: nothing listens on port {node.port}"
    except socket.gaierror:
        return f"host {node.host!r} not found"
    except OSError as exc:
        return f"cannot connect ({_reason(exc)})"
    return ""


def application_entity(node: DimseNode) -> AE:
    ae = AE(ae_title=node.calling_aet)
    ae.connection_timeout = node.timeout_s
    ae.acse_timeout = node.timeout_s
    ae.dimse_timeout = node.timeout_s
    ae.network_timeout = node.timeout_s
    ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs
    return ae


def associate(node: DimseNode, contexts: Iterable, **kwargs):
    """An established association with ``node``; PacsError with the reason when there is none.

    A peer that rejects an association sends its A-ASSOCIATE-RJ and closes the connection at once;
    pynetdicom sometimes sees the close first and reports an abort (7 in 100 tries against Orthanc
    1.10 with a wrong called AE title). An abort from a peer whose port answers is therefore asked
    again, up to twice, to learn the peer's reason."""
    started = time.monotonic()
    for _ in range(3):
        assoc = _try_associate(node, contexts, **kwargs)
        if assoc.is_established:
            return assoc
        if assoc.is_rejected:
            answer = assoc.acceptor.primitive
            reason = getattr(answer, "reason_str", "") or "no reason given"
            raise PacsError(f"{node.label}: association rejected: {reason}")
        left = node.timeout_s - (time.monotonic() - started)
        if left < 0.05 * node.timeout_s:  # the time is up: no second try to find out more
            raise PacsError(f"{node.label}: timeout: no answer within {node.timeout_s:g} s")
        reason = why_not(node, left)
        if reason:
            raise PacsError(f"{node.label}: {reason}")
    raise PacsError(f"{node.label}: association aborted by the peer")


def _try_associate(node: DimseNode, contexts: Iterable, **kwargs):
    ae = application_entity(node)
    ae.requested_contexts = list(contexts)
    tls = (ssl_context(node), node.host) if node.tls else None
    return ae.associate(node.host, node.port, ae_title=node.aet, tls_args=tls, **kwargs)


def echo(node: DimseNode) -> str:
    """C-ECHO: "reachable (...)" or PacsError with why not."""
    started = time.monotonic()
    assoc = associate(node, [build_context(Verification)])
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    code = status.get("Status") if status else None
    if code != 0x0000:
        what = "no answer" if code is None else f"status 0x{code:04X}"
        raise PacsError(f"{node.label}: association accepted but C-ECHO failed ({what})")
    return f"reachable: C-ECHO answered in {1000 * (time.monotonic() - started):.0f} ms"


def _identifier(level: str, keys: Iterable[str], filters: dict[str, str]) -> Dataset:
    ds = Dataset()
    if any(not v.isascii() for v in filters.values()):
        ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = level
    for key in keys:
        setattr(ds, key, "")
    for key, value in filters.items():
        setattr(ds, key, value)
    return ds


def c_find(node: DimseNode, identifier: Dataset, limit: int | None = None, assoc=None) -> tuple[list, bool]:
    """The answers of one C-FIND (study root), at most ``limit``: (data sets, whether more were cut off)."""
    own = assoc is None
    if own:
        assoc = associate(node, [build_context(StudyRootQueryRetrieveInformationModelFind)])
    answers, limited = [], False
    try:
        for status, found in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
            code = status.get("Status") if status else None
            if code is None:
                raise PacsError(f"{node.label}: the connection was lost during the search")
            if code in (0xFF00, 0xFF01):
                if limit is not None and len(answers) >= limit:
                    limited = True
                    assoc.abort()  # the rest is not wanted: stop the server sending it
                    own = False
                    break
                if found is not None:
                    answers.append(found)
            elif code == 0xFE00 or code == 0x0000:
                break
            else:
                raise PacsError(f"{node.label}: C-FIND failed with status 0x{code:04X}")
    finally:
        if own and assoc.is_established:
            assoc.release()
    return answers, limited


def find(node: DimseNode, query: Query) -> Found:
    answers, limited = c_find(node, _identifier("STUDY", STUDY_KEYS, query.filters()), query.limit)
    return Found([study_from(ds) for ds in answers], limited)


def list_series(node: DimseNode, study_uid: str, assoc=None) -> list[SeriesInfo]:
    ident = _identifier("SERIES", SERIES_KEYS, {"StudyInstanceUID": study_uid})
    answers, _ = c_find(node, ident, assoc=assoc)
    return sorted((series_from(ds) for ds in answers), key=lambda s: (s.number is None, s.number or 0))


def list_instances(node: DimseNode, study_uid: str, series_uid: str, assoc=None) -> list[str]:
    ident = _identifier(
        "IMAGE", ("SOPInstanceUID",), {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid}
    )
    answers, _ = c_find(node, ident, assoc=assoc)
    return [str(ds.SOPInstanceUID) for ds in answers if ds.get("SOPInstanceUID")]
