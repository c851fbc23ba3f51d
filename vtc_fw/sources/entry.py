"""The unit every structure source yields: a structure with a stable id and its provenance."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymatgen.core import Structure

from vtc_fw import THREE_D_METALS


@dataclass(frozen=True)
class StructureEntry:
    """One structure from one source, or the record of why it could not be read.

    Args:
        structure_id: Stable, source-prefixed id, e.g. ``"oqmd-icsd:<name>"``, ``"file:<stem>"``,
            ``"ase-db:<dbstem>:<row id>"``, ``"amcsd:<id>"``, ``"mp:<material_id>"``.
        structure: The structure, or None when it could not be read.
        source: ``"oqmd-icsd"``, ``"cif-dir"``, ``"ase-db"``, ``"amcsd"`` or ``"mp"``.
        provenance: Where it came from (path, row id, name, licence, query, package version)
            and a summary of what was read (formula, ordered, 3d metals). JSON-serialisable.
        error: A message for the user when the input could not be read; the batch goes on.
        reason: Why it could not be read (a ``vtc_fw.errors.Reason`` value), with ``error``.
    """

    structure_id: str
    structure: Structure | None
    source: str
    provenance: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reason: str | None = None

    @property
    def is_readable(self) -> bool:
        """Whether a structure was read (it may still be disordered: see ``provenance``)."""
        return self.structure is not None

    @property
    def three_d_metals(self) -> tuple[str, ...]:
        """The 3d transition metals in the structure, in periodic-table order."""
        return () if self.structure is None else three_d_metals_in(self.structure)

    def as_dict(self) -> dict[str, Any]:
        """The entry as a JSON-serialisable document (structure as pymatgen's dict)."""
        return {
            "structure_id": self.structure_id,
            "structure": None if self.structure is None else self.structure.as_dict(),
            "source": self.source,
            "provenance": self.provenance,
            "error": self.error,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> StructureEntry:
        """Rebuild an entry from :meth:`as_dict` output."""
        structure = document.get("structure")
        return cls(
            structure_id=document["structure_id"],
            structure=None if structure is None else Structure.from_dict(structure),
            source=document["source"],
            provenance=dict(document.get("provenance") or {}),
            error=document.get("error"),
            reason=document.get("reason"),
        )


def three_d_metals_in(structure: Structure) -> tuple[str, ...]:
    """The 3d transition metals present in a structure (partial occupancies count)."""
    present = {element.symbol for element in structure.composition.elements}
    return tuple(metal for metal in THREE_D_METALS if metal in present)


def structure_summary(structure: Structure) -> dict[str, Any]:
    """What the records layer and users filter on before touching the structure itself."""
    return {
        "formula": structure.composition.reduced_formula,
        "nsites": len(structure),
        "ordered": structure.is_ordered,
        "three_d_metals": list(three_d_metals_in(structure)),
    }


def json_safe(value: Any) -> Any:
    """Convert numpy scalars/arrays and NaN to plain JSON values (NaN becomes None)."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
