"""Move task documents between databases as gzipped JSON lines (``.jsonl.gz``).

One task document per line, in MongoDB extended JSON (dates stay dates), each carrying its
``record_key`` and ``task_key``. Import goes through the same idempotent insertion as the
workers, so importing a file twice, or into a database that already holds some of its tasks,
adds nothing twice and never replaces a successful task with a failed one.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bson import json_util
from pydantic import ValidationError

from vtc_fw.db.config import DbConfig
from vtc_fw.documents.task import TaskDocument, ensure_task_indexes, insert_task
from vtc_fw.errors import TransferError


def export_tasks(
    config: DbConfig,
    path: str | Path,
    query: Mapping[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the task documents matching ``query`` to ``path`` (``.jsonl.gz``).

    Args:
        config: The database to read.
        path: Output file; gzip-compressed JSON lines.
        query: MongoDB filter on the tasks collection (default: all).
        progress: Called with 1 after each document written.

    Returns:
        The number of documents written.
    """
    client = config.client()
    count = 0
    try:
        cursor = config.collection("tasks", client).find(
            dict(query or {}), projection={"_id": False}, sort=[("task_key", 1)]
        )
        with gzip.open(Path(path), "wt", encoding="utf-8") as handle:
            for document in cursor:
                handle.write(json_util.dumps(document, json_options=json_util.RELAXED_JSON_OPTIONS))
                handle.write("\n")
                count += 1
                if progress is not None:
                    progress(1)
    finally:
        client.close()
    return count


def import_tasks(
    config: DbConfig, path: str | Path, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Insert the task documents of a ``.jsonl.gz`` file, idempotently.

    Each line is validated as a :class:`TaskDocument` before anything is written for it.

    Args:
        config: The database to write.
        path: A file written by :func:`export_tasks`.
        progress: Called with 1 after each line.

    Returns:
        Counts by outcome: ``inserted``, ``replaced``, ``kept_successful``.

    Raises:
        TransferError: A line is not valid JSON or not a task document (line number given);
            the lines before it are imported.
    """
    outcomes: Counter[str] = Counter()
    client = config.client()
    try:
        tasks = config.collection("tasks", client)
        ensure_task_indexes(tasks)
        with gzip.open(Path(path), "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    outcomes[insert_task(tasks, _parse_line(line, path, number))] += 1
                if progress is not None:
                    progress(1)
    finally:
        client.close()
    return {name: outcomes[name] for name in ("inserted", "replaced", "kept_successful")}


def _parse_line(line: str, path: str | Path, number: int) -> TaskDocument:
    try:
        return TaskDocument.model_validate(json_util.loads(line))
    except (ValueError, ValidationError) as error:
        raise TransferError(f"{path}, line {number}: not a task document: {error}") from error
