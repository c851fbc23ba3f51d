"""XesBuilder: ``tasks`` → ``xes``, one document per record for one FEFF preset."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from maggma.core import Builder, Store

from vtc_fw.builders.incremental import as_utc, chunks, newest_by, query_by_keys, stale_keys
from vtc_fw.documents.base import BuilderMeta, ErrorInfo
from vtc_fw.documents.xes import XesDocument
from vtc_fw.errors import Reason
from vtc_fw.settings import DEFAULT_PRESET


class XesBuilder(Builder):
    """Collect each record's polarized crystal spectra, SAM and SAMS from its task documents.

    Incremental: a record is (re)built when one of its tasks is newer than its ``xes``
    document. A record whose tasks all failed gets a ``state="failed"`` document quoting
    the tasks' errors.

    Args:
        tasks: Source store of task documents (key ``task_key``).
        xes: Target store (key ``record_key``).
        preset: FEFF preset whose tasks are used. One ``xes`` collection holds one preset;
            use another collection for another preset.
        query: Extra filter on the tasks.
        chunk_size: Records per database round trip.
    """

    parallel_items = True
    """Records are built independently (the orientation search over σ is most of the CPU):
    ``run_builders`` may spread them over processes."""

    def __init__(
        self,
        tasks: Store,
        xes: Store,
        preset: str = DEFAULT_PRESET,
        query: dict[str, Any] | None = None,
        chunk_size: int = 500,
        **kwargs: Any,
    ) -> None:
        self.tasks = tasks
        self.xes = xes
        self.preset = preset
        self.query = query or {}
        self.documents_written = 0
        super().__init__(sources=[tasks], targets=[xes], chunk_size=chunk_size, **kwargs)

    def ensure_indexes(self) -> None:
        """Indexes the incremental queries use."""
        for field in ("record_key", "preset", self.tasks.last_updated_field):
            self.tasks.ensure_index(field)
        self.xes.ensure_index("record_key", unique=True)
        self.xes.ensure_index("state")
        self.xes.ensure_index("sams")

    def get_items(self) -> Iterator[list[dict[str, Any]]]:
        """The task documents of every record with newer tasks, grouped by record."""
        self.ensure_indexes()
        criteria = {**self.query, "preset": self.preset}
        source = newest_by(self.tasks, "record_key", criteria)
        target = newest_by(self.xes, "record_key", {"preset": self.preset})
        keys = stale_keys(source, target)
        self.logger.info(f"{len(keys)} records with new {self.preset} tasks")
        self.total = len(keys)
        for chunk in chunks(keys, self.chunk_size):
            grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for task in query_by_keys(self.tasks, "record_key", chunk, criteria):
                grouped[task["record_key"]].append(task)
            yield from grouped.values()

    def process_item(self, item: list[dict[str, Any]]) -> dict[str, Any]:
        """The ``xes`` document of one record from its tasks (pure, no database)."""
        tasks = [{**task, "last_updated": as_utc(task["last_updated"])} for task in item]
        meta = BuilderMeta(builder=type(self).__name__, parameters={"preset": self.preset})
        try:
            document = XesDocument.from_tasks(tasks, builder_meta=meta)
        except (ValueError, KeyError, TypeError) as error:
            unusable = ErrorInfo(
                type=type(error).__name__,
                reason=Reason.UNUSABLE_SPECTRA,
                message=f"unusable spectra: {error}",
            )
            document = XesDocument.from_failed_tasks(tasks, builder_meta=meta, error=unusable)
        return document.model_dump()

    def update_targets(self, items: list[dict[str, Any]]) -> None:
        """Upsert the documents by record key."""
        if items:
            self.xes.update(items, key="record_key")
            self.documents_written += len(items)
