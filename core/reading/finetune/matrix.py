"""The protocol matrix of a fine-tuned model beside the model it started from (the trainer dialog).

A quick version of ``bench/bench_robustness.py`` (``core.training.robustness.run_matrix``): a few
evenly spaced labelled nodules of the reserved split rendered under every scan protocol of
``MATRIX``, each model's AUC per cell beside the diameter alone on the same nodules. With so few
nodules the figures are rough (the full bench gives intervals); they show where a fine-tuned model
lost what its parent held.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from core.phantom.protocol import MATRIX

QUICK_NODULES = 40
QUICK_BOOTSTRAP = 100  # run_matrix's intervals are not shown here: keep their cost small


def matrix_events(
    models: Mapping[str, tuple[object, dict]],
    nodules: int = QUICK_NODULES,
    cells: Sequence[str] = tuple(MATRIX),
    chest_size: int = 512,
    device: str = "cpu",
) -> Iterator[dict]:
    """``{"event": "matrix-model", "model": name}`` as each model (``name: (model, card)``) starts,
    then ``{"event": "matrix", "rows": [...], "nodules": n}``: one row per cell with each model's AUC
    and the diameter's (``None`` where undefined)."""
    from core.lidc.table import load_nodules
    from core.training.robustness import run_matrix

    pool = load_nodules()
    results = {}
    for name, (model, card) in models.items():
        yield {"event": "matrix-model", "model": name}
        results[name] = run_matrix(
            model,
            card,
            pool,
            cells=cells,
            nodules=nodules,
            samples=QUICK_BOOTSTRAP,
            chest_size=chest_size,
            device=device,
        )
    first = next(iter(results.values()))
    rows = [
        {"cell": cell, **{name: r["cells"][cell]["auc"] for name, r in results.items()}}
        | {"diameter": first["cells"][cell]["diameter_auc"]}
        for cell in cells
    ]
    yield {"event": "matrix", "rows": rows, "nodules": first["nodules"]}
