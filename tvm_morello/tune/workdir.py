"""Repair a work_dir left behind by a killed tune, so that the JSONDatabase in it loads again."""
from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

DATABASE_FILES = ("database_workload.json", "database_tuning_record.json")


def repair_work_dir(work_dir: str | Path) -> int:
    """Finish or drop a half-written last line in the database files; return how many lines were dropped.

    meta-schedule appends one JSON line per record; a SIGKILL during that write leaves a line that makes
    ``JSONDatabase`` refuse the whole file ("Unexpected EOF"). Every complete line is kept.
    """
    dropped = 0
    for name in DATABASE_FILES:
        path = Path(work_dir) / name
        if path.exists():
            dropped += _repair_file(path)
    return dropped


def _repair_file(path: Path) -> int:
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    head, _, last = data.rpartition(b"\n")
    try:
        json.loads(last)
    except ValueError:
        path.write_bytes(head + b"\n" if head else b"")
        logger.warning("dropped a half-written line at the end of %s (the tune writing it was killed)", path)
        return 1
    with path.open("ab") as file:
        file.write(b"\n")
    return 0
