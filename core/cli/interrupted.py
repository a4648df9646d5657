"""What a training command prints and returns when Ctrl+C stops it (``train`` and ``finetune``)."""

from __future__ import annotations

import sys
from pathlib import Path


def interrupted(rank: int, state_path: Path) -> int:
    """Ctrl+C during training: say how to go on (rank 0 only), leave the process group, exit 130."""
    from core.training.distributed import shutdown

    if rank == 0:
        print(
            f"\ninterrupted: run the same command with --continue to go on from {state_path}"
            if state_path.is_file()
            else "\ninterrupted before the first epoch ended: nothing to continue",
            file=sys.stderr,
        )
    shutdown()
    return 130
