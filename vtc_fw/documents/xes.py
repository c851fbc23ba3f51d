"""The ``xes`` collection: one document per record, the crystal's polarized VtC-XES and SAMS.

Built by :class:`vtc_fw.builders.xes.XesBuilder` from the ``tasks`` of one FEFF preset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import Field

from vtc_fw.documents.base import BuilderMeta, Document, ErrorInfo, State, utc_now
from vtc_fw.errors import Reason
from vtc_fw.science.anisotropy import orientation_summary, sam_matrix, sigma_from_components

NO_SCF_RUNG = "no_scf"
"""Ladder rung that drops the SCF (see :mod:`vtc_fw.feff.ladder`)."""


class XesDocument(Document):
    """Polarized VtC-XES of one record's crystal along its basis axes, with SAM and SAMS."""

    record_key: str = Field(description='Record key "{structure_id}:{element}".')
    structure_id: str = Field(description="Id of the structure in the structures collection.")
    element: str = Field(description="Absorbing 3d element X.")
    preset: str = Field(description='FEFF preset the spectra were computed with, e.g. "paper".')
    task_keys: list[str] = Field(description="task_key of every task document considered.")
    state: State = Field(default=State.SUCCESSFUL, description="Whether spectra were found.")
    error: ErrorInfo | None = Field(default=None, description="Why no spectra (state failed).")
    task_key: str | None = Field(default=None, description="task whose spectra are stored.")
    formula: str | None = Field(default=None, description="Reduced formula of the structure.")
    energies: list[float] | None = Field(
        default=None, description="Emission energy grid (eV), FEFF's grid."
    )
    mu: list[list[float]] | None = Field(
        default=None,
        description="Crystal spectra (3×E) polarized along basis axes 1, 2, 3 (FEFF units).",
    )
    sam: list[list[float]] | None = Field(
        default=None, description="Spectral anisotropy matrix (3×3, dimensionless)."
    )
    sams: float | None = Field(
        default=None, description="SAMS = SAM_12 + SAM_13 + SAM_23 (dimensionless)."
    )
    task_sams: float | None = Field(
        default=None, description="SAMS as written by the task (a consistency check)."
    )
    rungs: list[str] = Field(
        default_factory=list,
        description="FEFF retry-ladder rung that gave each inequivalent site's spectra "
        '("preset", "lower_mixing", "lowest_mixing", "no_scf").',
    )
    self_consistent: bool | None = Field(
        default=None,
        description="Whether every site ran with its preset's potentials (no site fell to the "
        '"no_scf" rung of the retry ladder). False marks spectra of overlapped atomic '
        "potentials where the preset asked for an SCF: not that preset's target, so they are "
        'not trained on. Presets without SCF ("screen", "smoke") are true unless a site failed.',
    )
    has_sigma: bool = Field(
        default=False,
        description="Whether the task stored the crystal's dipole tensor σ(E) (six "
        "polarizations); records computed before σ have three spectra only.",
    )
    sams_max: float | None = Field(
        default=None,
        description="Largest SAMS over all orientations of the basis, from σ (null: no σ).",
    )
    basis_max: list[list[float]] | None = Field(
        default=None, description="The basis of sams_max (3×3, columns = axes, Cartesian)."
    )
    a_inv: float | None = Field(
        default=None,
        description="Rotation-invariant anisotropy of σ: sqrt(∫‖σ − tr σ/3‖²_F dE) / "
        "∫ tr σ/3 dE; SAMS ≤ sams_max ≤ 3 a_inv (null: no σ).",
    )
    best_pair: dict[str, Any] | None = Field(
        default=None,
        description="The two orthogonal polarizations with the largest contrast: value and "
        "directions (two Cartesian unit vectors); null without σ.",
    )
    last_updated: datetime = Field(
        default_factory=utc_now, description="Newest last_updated of the tasks used."
    )
    builder_meta: BuilderMeta = Field(description="Provenance of this document.")

    @classmethod
    def from_tasks(
        cls, tasks: Sequence[Mapping[str, Any]], *, builder_meta: BuilderMeta
    ) -> XesDocument:
        """The document of one record from its task documents (one preset).

        The newest successful task supplies the spectra; SAM and SAMS are recomputed from
        them with :func:`vtc_fw.science.anisotropy.sam_matrix`. Without a successful task the
        document is a failure that quotes the tasks' errors.
        """
        successful = [t for t in tasks if t.get("state") == "successful"]
        if not successful:
            return cls.from_failed_tasks(tasks, builder_meta=builder_meta)
        task = max(successful, key=lambda t: t["last_updated"])
        energies = np.asarray(task["energies"], dtype=float)
        mu = np.asarray(task["mu"], dtype=float)
        sam = sam_matrix(energies, mu)
        rungs = [str(site.get("rung")) for site in task.get("sites") or []]
        return cls(
            record_key=task["record_key"],
            structure_id=task["structure_id"],
            element=task["element"],
            preset=task["preset"],
            task_keys=sorted(t["task_key"] for t in tasks),
            task_key=task["task_key"],
            formula=task.get("formula"),
            energies=energies.tolist(),
            mu=mu.tolist(),
            sam=sam.tolist(),
            sams=float(np.triu(sam, k=1).sum()),
            task_sams=task.get("sams"),
            rungs=rungs,
            self_consistent=bool(rungs) and NO_SCF_RUNG not in rungs,
            last_updated=max(t["last_updated"] for t in tasks),
            builder_meta=builder_meta,
            **_orientations(task, energies),
        )

    @classmethod
    def from_failed_tasks(
        cls,
        tasks: Sequence[Mapping[str, Any]],
        *,
        builder_meta: BuilderMeta,
        error: ErrorInfo | None = None,
    ) -> XesDocument:
        """A failure document for a record none of whose tasks succeeded.

        ``error`` says why when tasks succeeded but gave no usable spectra.
        """
        task = tasks[0]
        errors = "; ".join(_error_text(t.get("error")) for t in tasks)
        error = error or ErrorInfo(
            type="NoSuccessfulTask",
            reason=Reason.NO_SUCCESSFUL_TASK,
            message=f"no successful task among {len(tasks)}: {errors}",
        )
        return cls(
            record_key=task["record_key"],
            structure_id=task["structure_id"],
            element=task["element"],
            preset=task["preset"],
            task_keys=sorted(t["task_key"] for t in tasks),
            state=State.FAILED,
            error=error,
            formula=task.get("formula"),
            last_updated=max(t["last_updated"] for t in tasks),
            builder_meta=builder_meta,
        )


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        return f"{error.get('reason', 'error')}: {error.get('message', '')}"
    return str(error)


def _orientations(task: Mapping[str, Any], energies: np.ndarray) -> dict[str, Any]:
    """``has_sigma``, ``sams_max``, ``basis_max``, ``a_inv``, ``best_pair`` of a task's σ."""
    if task.get("sigma") is None:
        return {"has_sigma": False}
    sigma = sigma_from_components(task["sigma"])
    basis = np.asarray(task["basis"], dtype=float) if task.get("basis") else None
    summary = orientation_summary(energies, sigma, basis)
    pair = summary["best_pair"]
    return {
        "has_sigma": True,
        "sams_max": summary["SAMS_max"],
        "basis_max": summary["basis_max"],
        "a_inv": summary["A_inv"],
        "best_pair": {"value": pair["value"], "directions": pair["directions"]},
    }
