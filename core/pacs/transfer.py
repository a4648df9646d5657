"""DIMSE transfers with pynetdicom: C-GET a study into a folder (resumable) and C-STORE files to a node.

``get`` lists the study's series, then for each series the SOP Instance UIDs the server has, and asks
(C-GET) only for those not already stored under the folder (``core.pacs.storage``): a retrieval that
was stopped (cancelled, killed, the server gone) resumes without duplicating or losing an instance.
Each instance is written atomically as it arrives. ``progress(series, done, total)`` is called as
instances arrive; ``cancelled()`` is checked at each one (``core.util.cancellation``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom import uid
from pynetdicom import StoragePresentationContexts, build_context, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)

from core.pacs import storage
from core.pacs.dimse import STORAGE_SYNTAXES, associate, list_instances, list_series
from core.pacs.errors import PacsError
from core.pacs.nodes import DimseNode
from core.pacs.query import SeriesInfo
from core.pacs.sendlog import FAILURE, SendResult, dimse_outcome, read_for_sending
from core.util.cancellation import Cancelled, check

Progress = Callable[[SeriesInfo, int, int], None]


@functools.cache
def _get_contexts() -> list:
    contexts = [
        build_context(StudyRootQueryRetrieveInformationModelFind),
        build_context(StudyRootQueryRetrieveInformationModelGet),
    ]
    contexts += [build_context(cx.abstract_syntax, STORAGE_SYNTAXES) for cx in StoragePresentationContexts]
    return contexts[:128]  # the most one association may propose


def get(
    node: DimseNode,
    study_uid: str,
    root: Path,
    *,
    series_uids: Sequence[str] | None = None,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> storage.Retrieved:
    """Retrieve the study (or the given series) with C-GET into ``root``; PacsError or Cancelled on failure
    (every instance already written stays, whole)."""
    study_uid = storage.check_uid(study_uid, "study UID")
    contexts = list(_get_contexts())
    roles = [build_role(cx.abstract_syntax, scp_role=True) for cx in contexts[2:]]
    target: dict[str, str] = {}  # the series being retrieved: its UID; written by this thread only
    arrived = [0]
    failed: list[str] = []
    lock = threading.Lock()

    def on_store(event) -> int:
        # runs on pynetdicom's thread, as each instance arrives: a cancel stops the writing here at once,
        # whatever the caller's thread is doing (it raises Cancelled at its next look)
        if cancelled is not None and cancelled():
            return 0xA700  # refused: the server counts a failed sub-operation and goes on to the end
        sop = event.request.AffectedSOPInstanceUID
        try:
            ds = event.dataset
            if (ds.get("StudyInstanceUID"), ds.get("SeriesInstanceUID")) != (study_uid, target["series"]):
                # never file another study's (another patient's) instance under the one asked for
                raise ValueError("an instance of another series than the one asked for")
            path = storage.instance_path(root, study_uid, target["series"], sop)
            storage.write_encoded(path, event.encoded_dataset())
        except (OSError, ValueError, AttributeError) as exc:
            with lock:
                failed.append(f"{sop}: {exc}")
            return 0xA700  # out of resources: the server counts it as a failed sub-operation
        with lock:
            arrived[0] += 1
        return 0x0000

    result = storage.Retrieved(Path(root), study_uid)
    assoc = associate(node, contexts, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        listing = list_series(node, study_uid, assoc=assoc)
        if series_uids is not None:
            listing = [s for s in listing if s.series_uid in set(series_uids)]
        if not listing:
            what = "none of the given series is in" if series_uids is not None else "no series found for"
            raise PacsError(f"{node.label}: {what} study {study_uid}")
        for info in listing:
            check(cancelled)
            target["series"] = storage.check_uid(info.series_uid, "series UID")
            wanted = list_instances(node, study_uid, info.series_uid, assoc=assoc)
            have = storage.present(root, study_uid, info.series_uid)
            missing = [u for u in wanted if u not in have]
            result.skipped += len(wanted) - len(missing)
            arrived[0] = 0
            if progress:
                progress(info, len(wanted) - len(missing), len(wanted))
            code = 0x0000
            if missing:
                code = _get_series(
                    node, assoc, study_uid, info, missing, len(wanted), arrived, progress, cancelled
                )
            result.received += arrived[0]
            check(cancelled)
            result.series.append(info.series_uid)
            still = set(missing) - storage.present(root, study_uid, info.series_uid)
            if still or failed or code not in (0x0000, 0xB000):
                detail = f"; {failed[0]}" if failed else ""
                raise PacsError(
                    f"{node.label}: {len(still)} of {len(wanted)} instances of series {info.series_uid} "
                    f"not received (C-GET status 0x{code:04X}{detail}); run again to fetch the rest"
                )
    except BaseException:  # cancelled, interrupted, failed: stop the server sending at once
        assoc.abort()
        raise
    assoc.release()
    return result


def _get_series(node, assoc, study_uid, info, missing, total, arrived, progress, cancelled) -> int:
    """C-GET the ``missing`` instances of one series; the final status."""
    from pydicom.dataset import Dataset

    ident = Dataset()
    ident.StudyInstanceUID = study_uid
    ident.SeriesInstanceUID = info.series_uid
    if len(missing) < total:
        ident.QueryRetrieveLevel = "IMAGE"
        ident.SOPInstanceUID = missing
    else:
        ident.QueryRetrieveLevel = "SERIES"
    base = total - len(missing)
    for status, _ in assoc.send_c_get(ident, StudyRootQueryRetrieveInformationModelGet):
        code = status.get("Status") if status else None
        if code is None:
            raise PacsError(
                f"{node.label}: the connection was lost during the retrieval; "
                f"{arrived[0]} instance(s) kept, run again to fetch the rest"
            )
        if progress:
            progress(info, base + arrived[0], total)
        if code not in (0xFF00, 0xFF01):
            return code
        if cancelled is not None and cancelled():
            raise Cancelled()
    return 0x0000


def store(node: DimseNode, paths: Sequence[Path]) -> list[SendResult]:
    """C-STORE each file; one result per file. Files are only read, never changed."""
    results: dict[int, SendResult] = {}
    datasets = {}
    for index, path in enumerate(paths):
        ds, reason = read_for_sending(path)
        if ds is None:
            results[index] = SendResult(str(path), "", FAILURE, None, reason)
        else:
            datasets[index] = (ds, str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
    if datasets:
        uncompressed = (uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian)
        pairs = sorted({(cls, ts) for _, cls, ts in datasets.values()})
        contexts = [build_context(cls, [ts, *(t for t in uncompressed if t != ts)]) for cls, ts in pairs]
        try:
            assoc = associate(node, contexts[:128])  # the most one association may propose
        except PacsError as exc:
            for index, (ds, _, _) in datasets.items():
                results[index] = SendResult(
                    str(paths[index]), str(ds.SOPInstanceUID), FAILURE, None, str(exc)
                )
            return [results[i] for i in range(len(paths))]
        try:
            for index, (ds, _, _) in datasets.items():
                results[index] = _store_one(node, assoc, Path(paths[index]), ds)
        finally:
            if assoc.is_established:
                assoc.release()
    return [results[i] for i in range(len(paths))]


def _store_one(node: DimseNode, assoc, path: Path, ds) -> SendResult:
    sop = str(ds.SOPInstanceUID)
    if not assoc.is_established:
        return SendResult(str(path), sop, FAILURE, None, f"{node.label}: the association was lost")
    try:
        status = assoc.send_c_store(ds)
    except (ValueError, RuntimeError) as exc:  # no accepted context for its SOP class / transfer syntax
        return SendResult(str(path), sop, FAILURE, None, str(exc).splitlines()[0][:200])
    code = status.get("Status") if status else None
    reason = "" if code is not None else "no answer (timeout or connection lost)"
    if code is not None and code != 0x0000:
        reason = str(status.get("ErrorComment", "")) or ""
    return SendResult(str(path), sop, dimse_outcome(code), code, reason)
