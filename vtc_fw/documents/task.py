"""The ``tasks`` collection: one document per FEFF calculation of a record with one preset.

The task key ``"{record_key}:{preset}"`` is unique in the collection (a unique index), so a
re-run Firework replaces its document instead of adding one. Failed calculations are
documents too (``state="failed"`` with a readable ``error``); a failure never replaces a
successful document of the same key.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
from monty.json import jsanitize
from pydantic import Field
from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from vtc_fw import __version__
from vtc_fw.documents.base import Document, ErrorInfo, State, package_versions, utc_now
from vtc_fw.errors import Reason
from vtc_fw.keys import parse_record_key, task_key

TASK_COLLECTION = "tasks"


class SiteInfo(Document):
    """What the FEFF engine did on one inequivalent absorbing site."""

    site_index: int = Field(description="Representative site (index in the structure).")
    multiplicity: int = Field(description="Equivalent sites it stands for.")
    n_polarizations: int = Field(description="FEFF polarization runs on this site.")
    rung: str = Field(description="Retry-ladder rung that succeeded (vtc_fw.feff.ladder).")
    scf_converged: bool | None = Field(description="FEFF's SCF flag (null: no SCF).")
    stages: dict[str, float] = Field(description="Wall seconds per FEFF stage.")
    cpu_s: float = Field(description="CPU seconds of the site's FEFF processes.")


class AttemptInfo(Document):
    """One try of one site on one rung of the retry ladder."""

    site_index: int = Field(description="Representative absorbing site.")
    rung: str = Field(description="Ladder rung name.")
    scf: dict[str, Any] | None = Field(description="SCF settings used (null: no SCF).")
    ok: bool = Field(description="Whether every polarization gave a valid spectrum.")
    reason: Reason | None = Field(default=None, description="Why it failed (null: it did not).")
    message: str | None = Field(default=None, description="The failure's message.")
    wall_s: float = Field(default=0.0, description="Seconds spent on the attempt.")


class TaskDocument(Document):
    """A FEFF10 VtC-XES calculation of one record with one preset, successful or failed."""

    task_key: str = Field(description='Unique key "{structure_id}:{element}:{preset}".')
    record_key: str = Field(description='Record key "{structure_id}:{element}".')
    structure_id: str = Field(description="Id of the structure in the structures collection.")
    element: str = Field(description="Absorbing 3d element X.")
    preset: str = Field(description='FEFF preset name, e.g. "paper" or "smoke".')
    state: State = Field(description="Outcome of the calculation.")
    formula: str | None = Field(default=None, description="Reduced formula of the structure.")
    error: ErrorInfo | None = Field(
        default=None, description="For a failed task: the error's type, reason and message."
    )
    basis: list[list[float]] | None = Field(
        default=None, description="Record basis V (3×3, columns are the axes, Cartesian frame)."
    )
    basis_source: str | None = Field(
        default=None, description='What the basis diagonalizes: "quadrupole" or "inertia".'
    )
    polarizations: list[list[float]] | None = Field(
        default=None,
        description="Unit polarization vectors of the three spectra (Cartesian frame, rows).",
    )
    sites: list[SiteInfo] = Field(
        default_factory=list, description="Per inequivalent absorbing site: what FEFF did."
    )
    energies: list[float] | None = Field(default=None, description="FEFF energy grid (eV).")
    mu: list[list[float]] | None = Field(
        default=None,
        description="Crystal spectra (3×E), multiplicity-weighted sums over sites (FEFF units).",
    )
    sigma: list[list[float]] | None = Field(
        default=None,
        description="Crystal dipole tensor σ(E) in the structure's Cartesian frame: its six "
        "components xx, yy, zz, xy, xz, yz on the energy grid (6×E, FEFF units); mu along a "
        "unit polarization e is eᵀσe. None for records computed with three polarizations only.",
    )
    sigma_frame: str | None = Field(
        default=None, description='Frame of sigma: "cartesian" (the structure\'s), or None.'
    )
    sam: list[list[float]] | None = Field(
        default=None, description="Spectral anisotropy matrix (3×3, dimensionless)."
    )
    sams: float | None = Field(default=None, description="SAM_12 + SAM_13 + SAM_23.")
    route: str | None = Field(
        default=None, description="How the crystal spectra were assembled (engine route)."
    )
    cards: dict[str, Any] = Field(default_factory=dict, description="FEFF cards used.")
    feff_version: str | None = Field(default=None, description="FEFF version string.")
    attempts: list[AttemptInfo] = Field(
        default_factory=list,
        description="Every FEFF attempt of the retry ladder: changed parameters and outcome.",
    )
    stages: dict[str, Any] = Field(
        default_factory=dict, description="CPU/wall time per FEFF stage (s)."
    )
    cpu_s: float | None = Field(default=None, description="FEFF CPU time, s.")
    wall_s: float | None = Field(
        default=None, description="Wall time of the FEFF engine's calculation, s."
    )
    task_wall_s: float | None = Field(
        default=None,
        description="Wall time of the whole FireTask: record rebuild, FEFF, archiving, s.",
    )
    archive: str | None = Field(
        default=None, description="Path of the compressed FEFF work directory."
    )
    host: str = Field(default_factory=socket.gethostname, description="Host that ran it.")
    run_dir: str | None = Field(default=None, description="Launch directory of the run.")
    vtc_fw_version: str = Field(default=__version__, description="vtc-fw version.")
    versions: dict[str, str] = Field(
        default_factory=package_versions, description="Package versions of the run."
    )
    last_updated: datetime = Field(
        default_factory=utc_now, description="When the document was written (UTC)."
    )

    @classmethod
    def from_spectra(
        cls, record: Mapping[str, Any], spectra: Mapping[str, Any], **provenance: Any
    ) -> TaskDocument:
        """A successful task from a record and the FEFF engine's result.

        Args:
            record: ``Record.summary()`` of the computed record (key, ids, formula, basis).
            spectra: ``RecordSpectra.as_dict()`` of the FEFF engine.
            provenance: Extra fields such as ``run_dir`` and ``host``.
        """
        basis = np.asarray(record["basis"], dtype=float)
        return cls(
            task_key=task_key(record["record_key"], spectra["preset"]),
            record_key=record["record_key"],
            structure_id=record["structure_id"],
            element=record["element"],
            preset=spectra["preset"],
            state=State.SUCCESSFUL,
            formula=record.get("formula"),
            basis=basis.tolist(),
            basis_source=record.get("basis_source"),
            polarizations=basis.T.tolist(),
            sites=jsanitize(list(spectra.get("sites") or [])),
            energies=np.asarray(spectra["energies"], dtype=float).tolist(),
            mu=np.asarray(spectra["mu"], dtype=float).tolist(),
            sigma=spectra.get("sigma"),
            sigma_frame="cartesian" if spectra.get("sigma") is not None else None,
            sam=np.asarray(spectra["sam"], dtype=float).tolist(),
            sams=float(spectra["sams"]),
            route=spectra.get("route"),
            cards=dict(spectra.get("cards") or {}),
            feff_version=spectra.get("feff_version"),
            attempts=list(spectra.get("attempts") or []),
            stages=dict(spectra.get("stages") or {}),
            cpu_s=spectra.get("cpu_s"),
            wall_s=spectra.get("wall_s"),
            archive=_as_str(spectra.get("archive")),
            **provenance,
        )

    @classmethod
    def from_failure(
        cls,
        record_key: str,
        preset: str,
        error: Mapping[str, Any],
        *,
        attempts: list[dict[str, Any]] | None = None,
        **fields: Any,
    ) -> TaskDocument:
        """A failed task.

        Args:
            record_key: ``"{structure_id}:{element}"``.
            preset: FEFF preset name.
            error: ``{"type", "reason", "message"}`` (see ``VtcError.as_dict``).
            attempts: The FEFF attempts made before giving up, if any.
            fields: Further known fields (formula, task_wall_s, run_dir, host, ...).
        """
        structure_id, element = parse_record_key(record_key)
        return cls(
            task_key=task_key(record_key, preset),
            record_key=record_key,
            structure_id=structure_id,
            element=element,
            preset=preset,
            state=State.FAILED,
            error=ErrorInfo.model_validate(dict(error)),
            attempts=attempts or [],
            **fields,
        )

    def as_mongo(self) -> dict[str, Any]:
        """The document as stored (datetimes kept as BSON dates)."""
        return self.model_dump(mode="python")


def ensure_task_indexes(tasks: Collection) -> None:
    """Create the unique task-key index and the indexes builders query on."""
    tasks.create_index([("task_key", ASCENDING)], unique=True)
    for field in ("record_key", "state", "last_updated", "preset"):
        tasks.create_index([(field, ASCENDING)])


def insert_task(
    tasks: Collection,
    document: TaskDocument | Mapping[str, Any],
    *,
    replace_successful: bool = True,
) -> str:
    """Insert or replace a task document, idempotently.

    A successful document replaces whatever has its key (a rerun's newer result); a failed
    one replaces only a failed one (a late failure never hides a success).

    Args:
        tasks: The ``tasks`` collection (with the unique index of ``ensure_task_indexes``).
        document: The task, as a TaskDocument or a dict of its fields.
        replace_successful: False keeps any successful document of the key, even against a
            successful one (an import does not overwrite computed work unless asked to).

    Returns:
        What happened: ``"inserted"``, ``"replaced"`` or ``"kept_successful"``.
    """
    if isinstance(document, TaskDocument):
        document = document.as_mongo()
    document = {k: v for k, v in document.items() if k != "_id"}
    selector: dict[str, Any] = {"task_key": document["task_key"]}
    if document["state"] != "successful" or not replace_successful:
        selector["state"] = {"$ne": "successful"}
    try:
        result = tasks.replace_one(selector, document, upsert=True)
    except DuplicateKeyError:
        return "kept_successful"  # the upsert collided with the successful document
    return "inserted" if result.upserted_id is not None else "replaced"


def newest_successful_task(
    tasks: Collection, record_key: str, preset: str | None = None
) -> dict[str, Any] | None:
    """The newest successful task of a record (by ``last_updated``), or None.

    Args:
        tasks: The ``tasks`` collection.
        record_key: ``"{structure_id}:{element}"``.
        preset: Only tasks of this preset (None: any).
    """
    query: dict[str, Any] = {"record_key": record_key, "state": "successful"}
    if preset is not None:
        query["preset"] = preset
    found = tasks.find(query).sort("last_updated", DESCENDING).limit(1)
    return next(iter(found), None)


def _as_str(value: Any) -> str | None:
    return None if value is None else str(value)
