"""Submission: structures from a source become ``structures`` documents and XES workflows.

One workflow per record (structure, 3d element) and preset. A record is skipped when a
workflow for its task key already exists (any state) or a successful task does, so a
submission can be repeated, interrupted and resumed. Every structure is stored; those that
cannot be read, or fail the cheap checks of :func:`vtc_fw.science.records.check_usable`
(disordered, a poison geometry, overlapping or isolated atoms, no 3d metal), get no workflow
and are reported with their reason (the FeatureBuilder stores their failed documents). Only
failures that need the symmetry analysis reach a worker, whose Firework then fizzles with a
failed task document.

A structure that duplicates another (the project's own dedupe,
:class:`vtc_fw.sources.dedupe.DuplicateFinder`: same formula, space group and StructureMatcher
fit) gets no workflow when the other comes earlier in the same submission or is already in
the database with a workflow or successful task for every record asked for; its structure
document is stored all the same, and the report names it and its twin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from fireworks import LaunchPad
from pymatgen.core import Structure
from pymongo import ASCENDING, ReplaceOne
from pymongo.collection import Collection

from vtc_fw.db.config import DbConfig
from vtc_fw.documents.task import TASK_COLLECTION
from vtc_fw.errors import StructureError, UsageError
from vtc_fw.keys import record_key, task_key
from vtc_fw.science.oxidation_cache import shipped_oxidation
from vtc_fw.science.records import check_usable
from vtc_fw.sources import DuplicateFinder, StructureEntry
from vtc_fw.workflow.maker import XesWorkflowMaker

SOURCES = ("oqmd-icsd", "cif-dir", "ase-db", "mp")
BATCH_SIZE = 200


@dataclass
class SubmitReport:
    """What a submission did.

    Attributes:
        added: Task keys of the workflows added.
        existing: Task keys skipped because a workflow or a successful task exists.
        unreadable: ``(structure_id, error)`` of entries without a structure.
        duplicates: ``(structure_id, twin structure_id)`` of structures given no workflow
            because they duplicate a structure submitted before them.
        unusable: ``(structure_id, error)`` of structures that fail
            :func:`~vtc_fw.science.records.check_usable` (the error ends with its reason).
        structures: Number of structure documents written.
    """

    added: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    unusable: list[tuple[str, str]] = field(default_factory=list)
    structures: int = 0

    def summary(self) -> str:
        """One line for the user."""
        return (
            f"{self.structures} structures, {len(self.added)} workflows added, "
            f"{len(self.existing)} records already submitted or done, "
            f"{len(self.unreadable)} unreadable structures, "
            f"{len(self.unusable)} unusable structures, "
            f"{len(self.duplicates)} duplicate structures skipped"
        )


def open_source(
    source: str,
    *,
    path: str | None = None,
    limit: int | None = None,
    elements: Sequence[str] | None = None,
    seed: int | None = None,
) -> Iterator[StructureEntry]:
    """Entries of a structure source by name.

    Args:
        source: One of :data:`SOURCES`.
        path: Directory (``cif-dir``) or database file (``ase-db``; another OQMD copy).
        limit: At most this many entries (``oqmd-icsd``; others are cut after reading).
        elements: 3d elements a structure must contain one of.
        seed: With ``limit``, a seeded sample balanced over elements (``oqmd-icsd``).

    Raises:
        VtcError: Unknown source, or a missing path.
    """
    from vtc_fw import sources

    if source == "oqmd-icsd":
        return sources.iter_oqmd_icsd(limit=limit, elements=elements, seed=seed, path=path)
    entries: Iterator[StructureEntry]
    if source in ("cif-dir", "ase-db"):
        if path is None:
            raise UsageError(f"source {source} needs a path")
        entries = sources.iter_directory(path) if source == "cif-dir" else sources.iter_ase_db(path)
    elif source == "mp":
        mp_source = sources.MPSource(elements=list(elements)) if elements else sources.MPSource()
        entries = mp_source.iter_entries()
    else:
        raise UsageError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    return islice(entries, limit)


def submit_entries(
    entries: Iterable[StructureEntry],
    config: DbConfig,
    maker: XesWorkflowMaker | None = None,
    elements: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> SubmitReport:
    """Store structures and add one workflow per new record.

    Args:
        entries: Structure entries from any source.
        config: The database (LaunchPad and collections).
        maker: Workflow settings (default: preset ``"paper"``).
        elements: Only records of these 3d elements (default: every 3d metal present).
        progress: Called with the number of entries after each batch.
    """
    maker = maker or XesWorkflowMaker()
    launchpad = config.launchpad()
    client = config.client()
    report = SubmitReport()
    try:
        structures = config.collection("structures", client)
        structures.create_index([("structure_id", ASCENDING)], unique=True)
        structures.create_index([("formula", ASCENDING)])
        launchpad.workflows.create_index([("metadata.task_key", ASCENDING)])
        tasks = config.collection(TASK_COLLECTION, client)
        twins = _Twins(DuplicateFinder(), structures, tasks, launchpad, maker.preset, elements)
        for batch in _batches(entries, BATCH_SIZE):
            _submit_batch(batch, structures, twins, maker, elements, report)
            if progress is not None:
                progress(len(batch))
    finally:
        client.close()
    return report


def structure_document(entry: StructureEntry) -> dict[str, Any]:
    """The ``structures`` document of an entry (``StructureEntry.as_dict`` plus summary)."""
    document = entry.as_dict()
    structure = entry.structure
    document["formula"] = None if structure is None else structure.composition.reduced_formula
    document["three_d_metals"] = list(entry.three_d_metals)
    oxidation = None if structure is None else shipped_oxidation(entry.structure_id, structure)
    document["oxidation"] = None if oxidation is None else oxidation.as_dict()
    document["last_updated"] = datetime.now(UTC)
    return document


def _submit_batch(
    batch: list[StructureEntry],
    structures: Collection,
    twins: _Twins,
    maker: XesWorkflowMaker,
    elements: Sequence[str] | None,
    report: SubmitReport,
) -> None:
    structures.bulk_write(
        [
            ReplaceOne({"structure_id": e.structure_id}, structure_document(e), upsert=True)
            for e in batch
        ]
    )
    report.structures += len(batch)
    report.unreadable += [
        (e.structure_id, f"{e.error or 'unreadable'} [{e.reason or 'unreadable'}]")
        for e in batch
        if not e.structure
    ]
    duplicates = twins.duplicates(batch)
    report.duplicates += list(duplicates.items())
    records = [
        record
        for entry in batch
        if entry.structure_id not in duplicates
        for record in _usable_records(entry, elements, report)
    ]
    added = add_new_workflows(records, twins.tasks, twins.launchpad, maker)
    report.existing += sorted(key for key, fw_id in added.items() if fw_id is None)
    report.added += [key for key, fw_id in added.items() if fw_id is not None]


@dataclass
class _Twins:
    """Finds the duplicates of a submission, within it and against the database.

    Attributes:
        finder: Structures seen so far (the database's computed ones of each formula first).
        structures: The ``structures`` collection.
        tasks: The ``tasks`` collection.
        launchpad: The LaunchPad (its workflows name their task keys).
        preset: Preset of the submission.
        elements: 3d elements asked for (None: all).
        formulas: Formulas whose database structures are in ``finder`` already.
    """

    finder: DuplicateFinder
    structures: Collection
    tasks: Collection
    launchpad: LaunchPad
    preset: str
    elements: Sequence[str] | None
    formulas: set[str] = field(default_factory=set)

    def duplicates(self, entries: list[StructureEntry]) -> dict[str, str]:
        """``{structure_id: twin structure_id}`` of the entries that duplicate another.

        Unreadable entries are passed over.
        """
        readable = [(e.structure_id, e.structure) for e in entries if e.structure is not None]
        formulas = {structure.composition.reduced_formula for _, structure in readable}
        self._remember_computed(formulas - self.formulas)
        found = {}
        for structure_id, structure in readable:
            twin = self.finder.twin_of(structure_id, structure)
            if twin is not None and twin != structure_id:  # not the entry's own stored copy
                found[structure_id] = twin
        return found

    def _remember_computed(self, formulas: set[str]) -> None:
        """Show the finder the stored structures of ``formulas`` whose records are all queued.

        Only a structure with a workflow or a successful task for every record asked for is
        a twin worth skipping for: one stored without workflows computes nothing.
        """
        self.formulas |= formulas
        stored = list(
            self.structures.find(
                {"formula": {"$in": sorted(formulas)}, "structure": {"$ne": None}},
                {"_id": 0, "structure_id": 1, "structure": 1, "three_d_metals": 1},
            ).sort("structure_id", ASCENDING)
        )
        keys = {doc["structure_id"]: self._task_keys(doc) for doc in stored}
        existing = existing_task_keys(
            sorted(set().union(*keys.values())), self.tasks, self.launchpad
        )
        for doc in stored:
            if keys[doc["structure_id"]] and keys[doc["structure_id"]] <= existing:
                structure = Structure.from_dict(doc["structure"])
                self.finder.twin_of(doc["structure_id"], structure)

    def _task_keys(self, document: dict[str, Any]) -> set[str]:
        metals = document.get("three_d_metals") or []
        return {
            task_key(record_key(document["structure_id"], metal), self.preset)
            for metal in metals
            if self.elements is None or metal in self.elements
        }


def _usable_records(
    entry: StructureEntry, elements: Sequence[str] | None, report: SubmitReport
) -> list[tuple[Structure, str, str]]:
    """The entry's ``(structure, structure_id, element)`` records; its error goes to the report.

    A structure whose 3d metals are all outside ``elements`` is filtered out, not an error.
    """
    if entry.structure is None:
        return []
    wanted = [m for m in entry.three_d_metals if elements is None or m in elements]
    if entry.three_d_metals and not wanted:
        return []
    try:
        chosen = check_usable(entry.structure, entry.structure_id, wanted or None)
    except StructureError as error:
        report.unusable.append((entry.structure_id, f"{error} [{error.reason}]"))
        return []
    return [(entry.structure, entry.structure_id, element) for element in chosen]


def add_new_workflows(
    records: Sequence[tuple[Structure | dict[str, Any], str, str]],
    tasks: Collection,
    launchpad: LaunchPad,
    maker: XesWorkflowMaker,
) -> dict[str, int | None]:
    """Add the workflow of every ``(structure, structure_id, element)`` record not queued yet.

    Returns:
        Task key → the new Firework's id, or None where a workflow or a successful task
        already exists (nothing is added twice).
    """
    wanted = {
        task_key(record_key(sid, element), maker.preset): (s, sid, element)
        for s, sid, element in records
    }
    existing = existing_task_keys(list(wanted), tasks, launchpad)
    added: dict[str, int | None] = {}
    for key, (structure, structure_id, element) in wanted.items():
        if key in existing:
            added[key] = None
            continue
        mapping = launchpad.add_wf(maker.make(structure, structure_id, element))
        added[key] = min(mapping.values())
    return added


def existing_task_keys(keys: list[str], tasks: Collection, launchpad: LaunchPad) -> set[str]:
    """The task keys among ``keys`` that have a workflow or a successful task document."""
    with_workflow = launchpad.workflows.distinct(
        "metadata.task_key", {"metadata.task_key": {"$in": keys}}
    )
    done = tasks.distinct("task_key", {"task_key": {"$in": keys}, "state": "successful"})
    return set(with_workflow) | set(done)


def _batches(entries: Iterable[StructureEntry], size: int) -> Iterator[list[StructureEntry]]:
    iterator = iter(entries)
    while batch := list(islice(iterator, size)):
        yield batch


PENDING_STATES = ("WAITING", "READY", "RESERVED", "RUNNING")
"""Firework states of a calculation that is queued or running."""


def resubmit_without_sigma(
    config: DbConfig,
    maker: XesWorkflowMaker,
    elements: Sequence[str] | None = None,
    limit: int | None = None,
) -> dict[str, int | None]:
    """Queue again the successful tasks of ``maker.preset`` that have no σ (three polarizations).

    The new Firework computes σ (route ``"sigma"``); its successful task replaces the old one.
    Records already queued or running are not queued twice.

    Args:
        config: The database.
        maker: Workflow settings; its preset selects the tasks.
        elements: Only records of these absorbers.
        limit: At most this many records (in task-key order).

    Returns:
        Task key → new Firework id, or None where the record is already pending or its
        structure is not in the ``structures`` collection.
    """
    query: dict[str, Any] = {"state": "successful", "preset": maker.preset, "sigma": None}
    if elements:
        query["element"] = {"$in": list(elements)}
    client = config.client()
    try:
        tasks = config.collection(TASK_COLLECTION, client)
        found = list(
            tasks.find(query, {"_id": 0, "task_key": 1, "structure_id": 1, "element": 1})
            .sort("task_key", ASCENDING)
            .limit(limit or 0)
        )
        ids = sorted({task["structure_id"] for task in found})
        stored = {
            doc["structure_id"]: doc.get("structure")
            for doc in config.collection("structures", client).find(
                {"structure_id": {"$in": ids}}, {"_id": 0, "structure_id": 1, "structure": 1}
            )
        }
        launchpad = config.launchpad()
        keys = [task["task_key"] for task in found]
        pending = set(
            launchpad.fireworks.distinct(
                "spec.task_key", {"spec.task_key": {"$in": keys}, "state": {"$in": PENDING_STATES}}
            )
        )
        added: dict[str, int | None] = {}
        for task in found:
            structure = stored.get(task["structure_id"])
            if task["task_key"] in pending or structure is None:
                added[task["task_key"]] = None
                continue
            workflow = maker.make(structure, task["structure_id"], task["element"])
            added[task["task_key"]] = min(launchpad.add_wf(workflow).values())
    finally:
        client.close()
    return added
