"""Move task documents and their structures between databases as gzipped JSON lines.

One document per line, in MongoDB extended JSON (dates stay dates): a task document (with its
``record_key`` and ``task_key``), or ``{"collection": "structures", "document": {...}}``, the
``structures`` document of the tasks' ``structure_id``, written once, before its first task.
So a dataset moves whole, records computed from a user's own CIFs included. Files without
structure lines (exports of older versions, the committed ``data/``) still import; their
OQMD-ICSD and AMCSD structures are filled from the shipped sources
(:func:`fill_missing_structures`).

Import goes through the same idempotent insertion as the workers, so importing a file twice,
or into a database that already holds some of its tasks, adds nothing twice and never replaces
a successful task with a failed one; a structure already stored is kept.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from bson import json_util
from pydantic import ValidationError
from pymatgen.core import Structure
from pymongo import UpdateOne
from pymongo.collection import Collection

from vtc_fw.db.config import DbConfig, ensure_unique_index
from vtc_fw.documents.task import TaskDocument, ensure_task_indexes, insert_task
from vtc_fw.errors import TransferError
from vtc_fw.keys import record_key, task_key
from vtc_fw.sources.shipped import shipped_entries
from vtc_fw.workflow.submission import structure_document

STRUCTURES = "structures"
EXPORT_BATCH = 200
"""Tasks per structures lookup when exporting; structures per bulk write when importing."""
IMPORT_OUTCOMES = (
    "inserted",
    "replaced",
    "kept_successful",
    "structures_inserted",
    "structures_kept",
)
"""The counts :func:`import_tasks` returns, in order."""


def export_tasks(
    config: DbConfig,
    path: str | Path,
    query: Mapping[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write the task documents matching ``query``, and their structures, to ``path``.

    Args:
        config: The database to read.
        path: Output file; gzip-compressed JSON lines.
        query: MongoDB filter on the tasks collection (default: all).
        progress: Called with 1 after each task written.

    Returns:
        Counts: ``tasks`` written, ``structures`` written, ``without_structure`` (tasks whose
        structure is not in this database).
    """
    client = config.client()
    try:
        cursor = config.collection("tasks", client).find(
            dict(query or {}), projection={"_id": False}, sort=[("task_key", 1)]
        )
        with gzip.open(Path(path), "wt", encoding="utf-8") as handle:
            export = _ExportFile(handle, config.collection(STRUCTURES, client))
            while batch := list(islice(cursor, EXPORT_BATCH)):
                export.write_tasks(batch)
                if progress is not None:
                    progress(len(batch))
    finally:
        client.close()
    return {name: export.counts[name] for name in ("tasks", "structures", "without_structure")}


@dataclass
class _ExportFile:
    """An export being written: each structure once, on the line before its first task."""

    handle: TextIO
    structures: Collection
    counts: Counter[str] = field(default_factory=Counter)
    seen: set[str] = field(default_factory=set)
    """Structure ids written, or looked up and absent."""
    absent: set[str] = field(default_factory=set)

    def write_tasks(self, tasks: list[dict[str, Any]]) -> None:
        """Write a batch of tasks, each preceded by its structure if not written yet."""
        wanted = sorted({task["structure_id"] for task in tasks} - self.seen)
        found = {
            document["structure_id"]: document
            for document in self.structures.find(
                {"structure_id": {"$in": wanted}}, projection={"_id": False}
            )
        }
        self.seen.update(wanted)
        self.absent.update(set(wanted) - found.keys())
        for task in tasks:
            structure = found.pop(task["structure_id"], None)
            if structure is not None:
                self._write({"collection": STRUCTURES, "document": structure})
                self.counts["structures"] += 1
            self.counts["without_structure"] += task["structure_id"] in self.absent
            self._write(task)
            self.counts["tasks"] += 1

    def _write(self, document: dict[str, Any]) -> None:
        self.handle.write(json_util.dumps(document, json_options=json_util.RELAXED_JSON_OPTIONS))
        self.handle.write("\n")


def import_tasks(
    config: DbConfig,
    path: str | Path,
    progress: Callable[[int], None] | None = None,
    *,
    replace: bool = False,
) -> dict[str, int]:
    """Insert the task documents and structures of a ``.jsonl.gz`` file, all or nothing.

    The whole file is read and every line validated (a task document whose ``task_key`` and
    ``record_key`` agree with its record, structure, element and preset; a structures document
    whose structure pymatgen reads) before anything is written, so a truncated, non-gzip or
    forged file imports nothing. Structures go in first, so no imported task is without the
    structure its file carries; a structure already stored is kept, and an inserted one is
    stamped with the import time (its features are new to this database).

    Args:
        config: The database to write.
        path: A file written by :func:`export_tasks` (with or without structure lines).
        progress: Called with 1 after each task written.
        replace: Let an imported successful task replace a successful task of the same key
            (default: the database's successful tasks are kept).

    Returns:
        Counts by outcome: ``inserted``, ``replaced`` (a failed task, or with ``replace``),
        ``kept_successful``; ``structures_inserted``, ``structures_kept`` (already stored).

    Raises:
        TransferError: The file is not a complete gzip file of task documents (the first bad
            line's number given); nothing was written.
    """
    contents = read_transfer_file(path)
    outcomes: Counter[str] = Counter()
    client = config.client()
    try:
        outcomes.update(_insert_structures(config.collection(STRUCTURES, client), contents))
        tasks = config.collection("tasks", client)
        ensure_task_indexes(tasks)
        for document in contents.tasks:
            outcomes[insert_task(tasks, document, replace_successful=replace)] += 1
            if progress is not None:
                progress(1)
    finally:
        client.close()
    return {name: outcomes[name] for name in IMPORT_OUTCOMES}


def fill_missing_structures(config: DbConfig) -> dict[str, int]:
    """Store the structures that tasks refer to but the database lacks, from shipped sources.

    OQMD-ICSD and AMCSD structures are rebuilt from their ids
    (:func:`vtc_fw.sources.shipped.shipped_entries`), as ``vtc-fw submit`` stores them.

    Returns:
        ``filled``: structures stored; ``missing``: structures tasks refer to that are still
        not in the database (from a user's files, or another unshipped source).
    """
    client = config.client()
    try:
        structures = config.collection(STRUCTURES, client)
        ensure_unique_index(structures, "structure_id")
        wanted = set(config.collection("tasks", client).distinct("structure_id"))
        lacking = wanted - set(structures.distinct("structure_id"))
        found = [structure_document(entry) for entry in shipped_entries(lacking)]
        filled = _insert_if_missing(structures, found)
    finally:
        client.close()
    return {"filled": filled, "missing": len(lacking) - filled}


@dataclass(frozen=True)
class TransferFile:
    """The validated contents of an export file."""

    tasks: list[TaskDocument]
    structures: list[dict[str, Any]]


def read_transfer_file(path: str | Path) -> TransferFile:
    """Every task and structures document of a ``.jsonl.gz`` file, validated.

    Raises:
        TransferError: Not a complete gzip file, or a line that is neither a consistent task
            nor a readable structures document.
    """
    contents = TransferFile(tasks=[], structures=[])
    try:
        with gzip.open(Path(path), "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    _parse_line(line, f"{path}, line {number}", contents)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as error:
        raise TransferError(
            f"{path}: not a complete gzip file of task documents ({error}); nothing imported"
        ) from error
    return contents


def _parse_line(line: str, where: str, contents: TransferFile) -> None:
    try:
        document = json_util.loads(line)
    except ValueError as error:
        raise TransferError(f"{where}: not JSON: {error}; nothing imported") from error
    if isinstance(document, dict) and "collection" in document:
        contents.structures.append(_structure(document, where))
    else:
        contents.tasks.append(_task(document, where))


def _task(document: Any, where: str) -> TaskDocument:
    try:
        task = TaskDocument.model_validate(document)
    except ValidationError as error:
        raise TransferError(f"{where}: not a task document: {error}") from error
    expected_record = record_key(task.structure_id, task.element)
    expected_task = task_key(expected_record, task.preset)
    if (task.record_key, task.task_key) != (expected_record, expected_task):
        raise TransferError(
            f"{where}: keys {task.task_key!r} / {task.record_key!r} do not match the task's "
            f"structure, element and preset ({expected_task!r}); nothing imported"
        )
    return task


def _structure(line: dict[str, Any], where: str) -> dict[str, Any]:
    """The structures document of a ``{"collection": "structures", "document": ...}`` line."""
    document = line.get("document")
    if line["collection"] != STRUCTURES or not isinstance(document, dict):
        raise TransferError(f"{where}: not a structures document; nothing imported")
    if not isinstance(document.get("structure_id"), str):
        raise TransferError(f"{where}: a structures document without structure_id")
    if document.get("structure") is not None:
        try:
            Structure.from_dict(document["structure"])
        except Exception as error:  # pymatgen raises anything on a malformed dict
            raise TransferError(
                f"{where}: structure {document['structure_id']!r} is not a pymatgen structure "
                f"({type(error).__name__}: {error}); nothing imported"
            ) from error
    return {key: value for key, value in document.items() if key != "_id"}


def _insert_structures(structures: Collection, contents: TransferFile) -> dict[str, int]:
    if not contents.structures:
        return {}
    ensure_unique_index(structures, "structure_id")
    now = datetime.now(UTC)
    documents = [{**document, "last_updated": now} for document in contents.structures]
    inserted = _insert_if_missing(structures, documents)
    return {"structures_inserted": inserted, "structures_kept": len(documents) - inserted}


def _insert_if_missing(structures: Collection, documents: list[dict[str, Any]]) -> int:
    """Insert the documents whose ``structure_id`` is not stored yet; returns how many."""
    inserted = 0
    for start in range(0, len(documents), EXPORT_BATCH):
        batch = documents[start : start + EXPORT_BATCH]
        requests = [
            UpdateOne({"structure_id": d["structure_id"]}, {"$setOnInsert": d}, upsert=True)
            for d in batch
        ]
        inserted += structures.bulk_write(requests, ordered=False).upserted_count
    return inserted
