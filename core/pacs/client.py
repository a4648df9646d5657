"""One entry point per PACS operation, whatever the node speaks: DIMSE (``dimse``/``transfer``) or
DICOMweb (``web``). The CLI and the app call these and never the protocols' modules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from core.pacs import dimse, sendlog, storage, transfer, web
from core.pacs.nodes import DimseNode, Node
from core.pacs.query import Found, Query, SeriesInfo
from core.pacs.sendlog import SendResult


def echo(node: Node) -> str:
    """A line that starts "reachable", or PacsError saying why not (refused, rejected and why, timeout,
    TLS failure)."""
    return dimse.echo(node) if isinstance(node, DimseNode) else web.echo(node)


def find(node: Node, query: Query) -> Found:
    return dimse.find(node, query) if isinstance(node, DimseNode) else web.find(node, query)


def list_series(node: Node, study_uid: str) -> list[SeriesInfo]:
    """The study's series (``SeriesInfo.is_ct`` flags those this reader analyses)."""
    storage.check_uid(study_uid, "study UID")
    return (
        dimse.list_series(node, study_uid)
        if isinstance(node, DimseNode)
        else web.list_series(node, study_uid)
    )


def get(
    node: Node,
    study_uid: str,
    root: Path | None = None,
    *,
    series_uids: Sequence[str] | None = None,
    progress: Callable[[SeriesInfo, int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> storage.Retrieved:
    """Retrieve into ``root`` (default: the study cache), resuming what an earlier try left."""
    root = storage.study_cache() if root is None else Path(root)
    module = transfer if isinstance(node, DimseNode) else web
    return module.get(node, study_uid, root, series_uids=series_uids, progress=progress, cancelled=cancelled)


def send(node: Node, paths: Sequence[Path], log: Path | None = None) -> list[SendResult]:
    """Send the files (C-STORE or STOW-RS), one result each, appended to the send log."""
    results = transfer.store(node, paths) if isinstance(node, DimseNode) else web.store(node, paths)
    sendlog.append(node.label, results, log)
    return results
