"""Move task documents between databases as gzipped JSON lines (``.jsonl.gz``).

One task document per line, in MongoDB extended JSON (dates stay dates), each carrying its
``record_key`` and ``task_key``. Import goes through the same idempotent insertion as the
workers, so importing a file twice, or into a database that already holds some of its tasks,
adds nothing twice and never replaces a successful task with a failed one.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bson import json_util
from pydantic import ValidationError

from vtc_fw.db.config import DbConfig
from vtc_fw.documents.task import TaskDocument, ensure_task_indexes, insert_task
from vtc_fw.errors import TransferError
from vtc_fw.keys import record_key, task_key


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
    config: DbConfig,
    path: str | Path,
    progress: Callable[[int], None] | None = None,
    *,
    replace: bool = False,
) -> dict[str, int]:
    """Insert the task documents of a ``.jsonl.gz`` file, all or nothing, idempotently.

    The whole file is read and every line validated (a task document whose ``task_key`` and
    ``record_key`` agree with its record, structure, element and preset) before anything is
    written, so a truncated, non-gzip or forged file imports nothing.

    Args:
        config: The database to write.
        path: A file written by :func:`export_tasks`.
        progress: Called with 1 after each document written.
        replace: Let an imported successful task replace a successful task of the same key
            (default: the database's successful tasks are kept).

    Returns:
        Counts by outcome: ``inserted``, ``replaced`` (a failed task, or with ``replace``),
        ``kept_successful``.

    Raises:
        TransferError: The file is not a complete gzip file of task documents (the first bad
            line's number given); nothing was written.
    """
    documents = read_tasks(path)
    outcomes: Counter[str] = Counter()
    client = config.client()
    try:
        tasks = config.collection("tasks", client)
        ensure_task_indexes(tasks)
        for document in documents:
            outcomes[insert_task(tasks, document, replace_successful=replace)] += 1
            if progress is not None:
                progress(1)
    finally:
        client.close()
    return {name: outcomes[name] for name in ("inserted", "replaced", "kept_successful")}


def read_tasks(path: str | Path) -> list[TaskDocument]:
    """Every task document of a ``.jsonl.gz`` file, validated.

    Raises:
        TransferError: Not a complete gzip file, or a line that is not a consistent task.
    """
    documents = []
    try:
        with gzip.open(Path(path), "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    documents.append(_parse_line(line, path, number))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as error:
        raise TransferError(
            f"{path}: not a complete gzip file of task documents ({error}); nothing imported"
        ) from error
    return documents


def _parse_line(line: str, path: str | Path, number: int) -> TaskDocument:
    try:
        document = TaskDocument.model_validate(json_util.loads(line))
    except (ValueError, ValidationError) as error:
        raise TransferError(f"{path}, line {number}: not a task document: {error}") from error
    expected_record = record_key(document.structure_id, document.element)
    expected_task = task_key(expected_record, document.preset)
    if (document.record_key, document.task_key) != (expected_record, expected_task):
        raise TransferError(
            f"{path}, line {number}: keys {document.task_key!r} / {document.record_key!r} do not "
            f"match the task's structure, element and preset ({expected_task!r}); nothing imported"
        )
    return document
