"""DICOMweb with dicomweb-client: QIDO-RS ping and search, WADO-RS retrieval (resumable), STOW-RS.

Errors become one-line ``PacsError``s built here, never the library's text: a requests error names the
URL with its query, which holds the patient name searched for. Authentication is the node's bearer
token or basic-auth password (``core.pacs.credentials``), a CA file checks the server's certificate.
Retrieval follows ``core.pacs.transfer.get``: only the instances not yet under the folder are asked
for, each written atomically as it arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from core.pacs import storage
from core.pacs.errors import PacsError
from core.pacs.nodes import WebNode
from core.pacs.query import SERIES_KEYS, STUDY_KEYS, Found, Query, SeriesInfo, series_from, study_from
from core.pacs.sendlog import FAILURE, SUCCESS, WARNING, SendResult, read_for_sending
from core.util.cancellation import check

PAGE = 100
HTTP_MEANING = {
    401: "authentication refused",
    403: "access forbidden",
    404: "not found (is the base URL right?)",
}


class _LiteralWildcards(requests.adapters.HTTPAdapter):
    """Sends QIDO's ``*`` wildcard as itself: requests writes it ``%2A``, which Orthanc 1.10 matches
    literally (no study of "Test*" is found as "Test%2A"); ``*`` is legal as is in a query."""

    def send(self, request, *args, **kwargs):
        base, mark, query = (request.url or "").partition("?")
        if mark:
            request.url = base + mark + query.replace("%2A", "*")
        return super().send(request, *args, **kwargs)


def client(node: WebNode) -> DICOMwebClient:
    session = requests.Session()
    session.mount("http://", _LiteralWildcards())
    session.mount("https://", _LiteralWildcards())
    session.verify = node.ca_file or True
    if node.auth == "basic":
        session.auth = (node.username, node.secret)
    headers = {"Authorization": f"Bearer {node.secret}"} if node.auth == "bearer" else None
    web = DICOMwebClient(node.url.rstrip("/"), session=session, headers=headers, timeout=node.timeout_s)
    # its default retries every failed request up to 5 times with waits of 1, 2, 4, 8 s: a closed port
    # would take half a minute to report instead of failing within the node's timeout
    web.set_http_retry_params(retry=False)
    return web


def failure(node: WebNode, exc: Exception, doing: str) -> PacsError:
    """The one-line reason of a failed request (no URL: its query may name the patient)."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        reason = f"HTTP {code} {HTTP_MEANING.get(code, exc.response.reason or '')}".strip()
    elif isinstance(exc, requests.exceptions.SSLError):
        reason = "TLS failure (certificate not trusted or handshake refused)"
    elif isinstance(exc, requests.Timeout):
        reason = f"timeout: no answer within {node.timeout_s:g} s"
    elif isinstance(exc, requests.ConnectionError):
        text = str(exc)
        reason = "connection refused" if "refused" in text.lower() else "cannot connect"
    else:
        reason = f"unexpected answer ({type(exc).__name__})"
    return PacsError(f"{node.label}: {doing}: {reason}")


def _call(node: WebNode, doing: str, function: Callable, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise failure(node, exc, doing) from exc


def echo(node: WebNode) -> str:
    started = time.monotonic()
    _call(node, "QIDO-RS ping", client(node).search_for_studies, limit=1)
    return f"reachable: QIDO-RS answered in {1000 * (time.monotonic() - started):.0f} ms"


def find(node: WebNode, query: Query) -> Found:
    """Studies matching ``query``, asked page by page, at most ``query.limit`` of them."""
    web = client(node)
    answers: list[Dataset] = []
    while len(answers) <= query.limit:
        want = min(PAGE, query.limit + 1 - len(answers))
        page = _call(
            node,
            "study search",
            web.search_for_studies,
            search_filters=query.filters(),
            fields=list(STUDY_KEYS),
            limit=want,
            offset=len(answers),
        )
        answers += [Dataset.from_json(item) for item in page]
        if len(page) < want or want == 0:
            break
    limited = len(answers) > query.limit
    return Found([study_from(ds) for ds in answers[: query.limit]], limited)


def list_series(node: WebNode, study_uid: str) -> list[SeriesInfo]:
    found = _call(
        node,
        "series search",
        client(node).search_for_series,
        study_instance_uid=study_uid,
        fields=list(SERIES_KEYS),
    )
    infos = [series_from(Dataset.from_json(item)) for item in found]
    return sorted(infos, key=lambda s: (s.number is None, s.number or 0))


def list_instances(node: WebNode, study_uid: str, series_uid: str, web=None) -> list[str]:
    web = web or client(node)
    found = _call(
        node,
        "instance search",
        web.search_for_instances,
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        fields=["SOPInstanceUID"],
    )
    return [str(Dataset.from_json(item).SOPInstanceUID) for item in found]


def get(
    node: WebNode,
    study_uid: str,
    root: Path,
    *,
    series_uids: Sequence[str] | None = None,
    progress: Callable[[SeriesInfo, int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> storage.Retrieved:
    """Retrieve the study (or the given series) with WADO-RS into ``root``, as ``transfer.get`` does."""
    study_uid = storage.check_uid(study_uid, "study UID")
    web = client(node)
    result = storage.Retrieved(Path(root), study_uid)
    listing = list_series(node, study_uid)
    if series_uids is not None:
        listing = [s for s in listing if s.series_uid in set(series_uids)]
    if not listing:
        what = "none of the given series is in" if series_uids is not None else "no series found for"
        raise PacsError(f"{node.label}: {what} study {study_uid}")
    for info in listing:
        check(cancelled)
        series_uid = storage.check_uid(info.series_uid, "series UID")
        wanted = list_instances(node, study_uid, series_uid, web)
        have = storage.present(root, study_uid, series_uid)
        missing = [u for u in wanted if u not in have]
        result.skipped += len(wanted) - len(missing)
        done = len(wanted) - len(missing)
        if progress:
            progress(info, done, len(wanted))
        if len(missing) == len(wanted):
            arriving = web.iter_series(study_uid, series_uid)
        else:
            arriving = (web.retrieve_instance(study_uid, series_uid, uid) for uid in missing)
        try:
            for ds in arriving:
                if (ds.get("StudyInstanceUID"), ds.get("SeriesInstanceUID")) != (study_uid, series_uid):
                    raise PacsError(
                        f"{node.label}: the server sent an instance of another series than the one "
                        f"asked for; {result.received} instance(s) kept"
                    )
                storage.write_dataset(root, ds)
                done += 1
                result.received += 1
                if progress:
                    progress(info, done, len(wanted))
                check(cancelled)
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise PacsError(
                f"{failure(node, exc, 'retrieval')}; {result.received} instance(s) kept, "
                "run again to fetch the rest"
            ) from exc
        finally:
            close = getattr(arriving, "close", None)
            if close:
                close()
        still = set(missing) - storage.present(root, study_uid, series_uid)
        if still:
            raise PacsError(
                f"{node.label}: {len(still)} of {len(wanted)} instances of series {series_uid} "
                "not received; run again to fetch the rest"
            )
        result.series.append(series_uid)
    return result


def store(node: WebNode, paths: Sequence[Path]) -> list[SendResult]:
    """STOW-RS each file on its own request; one result per file. Files are only read, never changed."""
    web = client(node)
    results = []
    for path in paths:
        ds, reason = read_for_sending(path)
        if ds is None:
            results.append(SendResult(str(path), "", FAILURE, None, reason))
            continue
        sop = str(ds.SOPInstanceUID)
        try:
            answer = web.store_instances([ds])
        except (requests.RequestException, ValueError) as exc:
            results.append(SendResult(str(path), sop, FAILURE, None, str(failure(node, exc, "STOW-RS"))))
            continue
        results.append(_stow_result(str(path), sop, answer))
    return results


def _stow_result(path: str, sop: str, answer: Dataset) -> SendResult:
    for item in answer.get("FailedSOPSequence", []):
        if str(item.get("ReferencedSOPInstanceUID", "")) == sop:
            code = item.get("FailureReason")
            return SendResult(
                path, sop, FAILURE, None if code is None else int(code), "refused by the server"
            )
    for item in answer.get("ReferencedSOPSequence", []):
        if str(item.get("ReferencedSOPInstanceUID", "")) == sop:
            code = item.get("WarningReason")
            if code is not None:
                return SendResult(path, sop, WARNING, int(code), "stored with a warning")
            return SendResult(path, sop, SUCCESS, 0x0000)
    return SendResult(path, sop, FAILURE, None, "the server's answer does not list the object")
