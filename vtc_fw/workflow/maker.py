"""Workflow factories: one FireWorks workflow per record (structure + absorbing element).

A record's inequivalent sites share nothing but are few, and the FEFF engine loops over them
itself (computing each site's SCF potential once for all polarizations), so the default is
one Firework per record: ``RunXesTask`` then ``InsertXesTask``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fireworks import Firework, Workflow
from pymatgen.core import Structure

from vtc_fw import __version__
from vtc_fw.firetasks import InsertXesTask, RunXesTask
from vtc_fw.keys import record_key, task_key
from vtc_fw.settings import DEFAULT_PRESET


@dataclass
class XesWorkflowMaker:
    """Make the VtC-XES workflow of one record.

    Args:
        preset: FEFF preset name (``"paper"`` is the method's; ``"smoke"`` for plumbing).
        route: FEFF engine route (``"sigma"``: the dipole tensor σ too; see vtc_fw.feff.engine).
        timeout_s: Wall-clock limit of the whole record (every site and rung), s (None: none).
        feff_cmd: The FWorker env key of an external FEFF command, as ``">>key<<"`` (default
            ``">>feff_cmd<<"``: the worker's ``env.feff_cmd``, null runs feff10-rs). A command
            itself is refused by the worker: executables come from its configuration only.
        db_file: Database configuration file; ``">>db_file<<"`` reads the FWorker env.
        scratch_dir: Where FEFF runs; ``">>scratch_dir<<"`` reads the FWorker env.
        category: FireWorks ``_category`` of the Firework (None: any worker).
        priority: FireWorks ``_priority`` (higher runs first).
    """

    preset: str = DEFAULT_PRESET
    route: str = "sigma"
    timeout_s: float | None = None
    feff_cmd: str | None = ">>feff_cmd<<"
    db_file: str | None = ">>db_file<<"
    scratch_dir: str | None = ">>scratch_dir<<"
    category: str | None = None
    priority: int | None = None

    def make(self, structure: Structure | dict, structure_id: str, element: str) -> Workflow:
        """The workflow of record ``"{structure_id}:{element}"``.

        Args:
            structure: The (ordered) structure, or its pymatgen dict.
            structure_id: Stable id of the structure.
            element: Absorbing 3d element X.
        """
        if isinstance(structure, dict):
            structure = Structure.from_dict(structure)
        key_of_record = record_key(structure_id, element)
        key = task_key(key_of_record, self.preset)
        formula = structure.composition.reduced_formula
        metadata = {
            "task_key": key,
            "record_key": key_of_record,
            "structure_id": structure_id,
            "formula": formula,
            "element": element,
            "preset": self.preset,
            "vtc_fw_version": __version__,
        }
        firework = Firework(
            [self._run_task(structure, structure_id, element), self._insert_task()],
            name=f"xes {key}",
            spec=self._spec(metadata),
        )
        return Workflow([firework], name=f"{formula} {key}", metadata=metadata)

    def _run_task(self, structure: Structure, structure_id: str, element: str) -> RunXesTask:
        optional = {
            "feff_cmd": self.feff_cmd,
            "scratch_dir": self.scratch_dir,
            "timeout_s": self.timeout_s,
            "route": self.route,
        }
        return RunXesTask(
            structure=structure.as_dict(),
            structure_id=structure_id,
            element=element,
            preset=self.preset,
            **{name: value for name, value in optional.items() if value is not None},
        )

    def _insert_task(self) -> InsertXesTask:
        return InsertXesTask(db_file=self.db_file) if self.db_file else InsertXesTask()

    def _spec(self, metadata: dict[str, Any]) -> dict[str, Any]:
        spec = {key: metadata[key] for key in ("task_key", "record_key", "element", "preset")}
        if self.category is not None:
            spec["_category"] = self.category
        if self.priority is not None:
            spec["_priority"] = self.priority
        return spec
