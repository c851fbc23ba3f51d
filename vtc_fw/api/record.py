"""Everything the record page shows about one record, gathered from the collections."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from maggma.core import Store
from pymatgen.core import Structure
from pymatgen.io.cif import CifWriter
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from vtc_fw.science.features import FEATURE_COLUMNS
from vtc_fw.science.records import SYMPREC

SIGMA_FIELDS = ("sams_max", "a_inv", "best_pair")
"""Optional σ-derived fields of an ``xes`` document."""

_XES_FIELDS = [
    "record_key",
    "element",
    "formula",
    "preset",
    "state",
    "error",
    "task_key",
    "sam",
    "sams",
    "self_consistent",
    "rungs",
    "last_updated",
    *SIGMA_FIELDS,
]


@dataclass
class RecordView:
    """One record: its structure, features, predictions (newest model first) and FEFF result."""

    record_key: str
    structure_id: str
    element: str
    structure: Mapping[str, Any] | None
    features: Mapping[str, Any] | None
    predictions: list[dict[str, Any]]
    xes: Mapping[str, Any] | None

    @property
    def exists(self) -> bool:
        """Whether any collection knows the record."""
        return bool(self.features or self.predictions or self.xes)

    @property
    def formula(self) -> str | None:
        """Reduced formula from whichever document has it."""
        for document in (self.features, self.xes, self.structure, *self.predictions):
            if document and document.get("formula"):
                return document["formula"]
        return None

    @property
    def has_spectra(self) -> bool:
        """Whether FEFF spectra were computed (a figure can be drawn)."""
        return bool(self.xes and self.xes.get("state") == "successful")

    @property
    def sigma_fields(self) -> dict[str, Any]:
        """The σ-derived fields the ``xes`` document has."""
        if not self.xes:
            return {}
        return {name: self.xes[name] for name in SIGMA_FIELDS if self.xes.get(name) is not None}

    def feature_rows(self) -> list[tuple[str, Any]]:
        """(name, value) of the model's input features."""
        if not self.features:
            return []
        return [(name, self.features.get(name)) for name in FEATURE_COLUMNS]


def load_record(stores: Mapping[str, Store], record_key: str) -> RecordView:
    """Gather ``record_key`` from ``features``, ``predictions``, ``xes`` and ``structures``."""
    structure_id, _, element = record_key.rpartition(":")
    features = stores["features"].query_one({"record_key": record_key})
    if features is not None:
        structure_id = features.get("structure_id") or structure_id
    predictions = list(
        stores["predictions"].query(
            {"record_key": record_key},
            properties=[
                "model_id",
                "model_trained",
                "sams",
                "sams_std",
                "in_domain",
                "state",
                "error",
                "formula",
            ],
            sort={"model_trained": -1},
        )
    )
    xes = stores["xes"].query_one({"record_key": record_key}, properties=_XES_FIELDS)
    structure = stores["structures"].query_one({"structure_id": structure_id})
    return RecordView(record_key, structure_id, element, structure, features, predictions, xes)


def spectra_version(stores: Mapping[str, Store], record_key: str) -> str | None:
    """``last_updated`` of the record's successful ``xes`` document (None: no spectra)."""
    xes = stores["xes"].query_one(
        {"record_key": record_key, "state": "successful"}, properties=["last_updated"]
    )
    return None if xes is None else str(xes.get("last_updated"))


def spectra_of(stores: Mapping[str, Store], record_key: str) -> tuple[list, list] | None:
    """``(energies, mu)`` of the record's FEFF spectra (``xes``, else its task), or None."""
    xes = stores["xes"].query_one(
        {"record_key": record_key, "state": "successful"},
        properties=["energies", "mu", "task_key"],
    )
    if xes is None:
        return None
    if xes.get("energies") and xes.get("mu"):
        return xes["energies"], xes["mu"]
    tasks = stores.get("tasks")
    task = tasks.query_one({"task_key": xes.get("task_key")}) if tasks is not None else None
    if task and task.get("energies") and task.get("mu"):
        return task["energies"], task["mu"]
    return None


def structure_summary(document: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Lattice, composition and symmetry of a ``structures`` document (None: no structure)."""
    if not document or not document.get("structure"):
        return None
    structure = Structure.from_dict(document["structure"])
    lattice = structure.lattice
    try:
        analyzer = SpacegroupAnalyzer(structure, symprec=SYMPREC)  # the features' tolerance
        spacegroup = f"{analyzer.get_space_group_symbol()} ({analyzer.get_space_group_number()})"
        crystal_system = analyzer.get_crystal_system()
    except Exception:  # spglib gives up on some structures; the page does without
        spacegroup, crystal_system = None, None
    return {
        "formula": structure.composition.reduced_formula,
        "full_formula": structure.composition.formula,
        "sites": len(structure),
        "a": lattice.a,
        "b": lattice.b,
        "c": lattice.c,
        "alpha": lattice.alpha,
        "beta": lattice.beta,
        "gamma": lattice.gamma,
        "volume": lattice.volume,
        "density": structure.density,
        "spacegroup": spacegroup,
        "crystal_system": crystal_system,
        "source": document.get("source"),
    }


def structure_cif(document: Mapping[str, Any]) -> str:
    """The structure of a ``structures`` document as CIF text."""
    return str(CifWriter(Structure.from_dict(document["structure"])))
