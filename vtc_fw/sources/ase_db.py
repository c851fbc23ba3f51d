"""Structures from an ASE database (SQLite or JSON), one entry per row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ase.db
import numpy as np
import numpy.typing as npt
from ase.db.row import AtomsRow
from pymatgen.core import Lattice, Structure

from vtc_fw.errors import SourceUnavailableError, StructureError
from vtc_fw.sources.entry import StructureEntry, json_safe, structure_summary

if TYPE_CHECKING:  # the backends ase.db.connect imports when it opens a file
    from ase.db.jsondb import JSONDatabase
    from ase.db.sqlite import SQLite3Database

SOURCE = "ase-db"


def structure_from_row(row: AtomsRow) -> Structure:
    """The periodic structure of an ASE db row (Cartesian positions in Å).

    Raises:
        StructureError: The row is not periodic in three dimensions or has a degenerate cell.
    """
    if not np.all(row.pbc):
        raise StructureError(
            f"row {row.id} is not periodic in 3D (pbc={row.pbc.tolist()}); a crystal is needed",
            reason="not_periodic",
        )
    cell = np.asarray(row.cell, dtype=float)
    if abs(np.linalg.det(cell)) < 1e-6:
        raise StructureError(f"row {row.id} has a zero-volume cell", reason="not_periodic")
    numbers = atomic_numbers(row)  # pymatgen takes atomic numbers, its annotation only symbols
    return Structure(Lattice(cell), numbers, row.positions, coords_are_cartesian=True)  # type: ignore[arg-type]


def atomic_numbers(row: AtomsRow) -> npt.NDArray[np.int_]:
    """The atomic numbers of a row.

    ASE sets ``numbers`` (like ``unique_id``) per instance from the stored record, and its
    ``AtomsRow`` class does not declare it; item access reads the same attribute, typed.
    """
    numbers: npt.NDArray[np.int_] = row["numbers"]
    return numbers


def open_ase_db(path: str | Path) -> SQLite3Database | JSONDatabase:
    """Connect to an existing ASE database (ase.db.connect would silently create a new one).

    The file's extension chooses the backend: ``.db`` SQLite, ``.json`` JSON (both are context
    managers, which ASE's ``Database`` base class is not).

    Raises:
        SourceUnavailableError: No file at ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceUnavailableError(f"no ASE database at {path}", reason="missing_database")
    return ase.db.connect(str(path))


def iter_ase_db(path: str | Path, selection: str | None = None) -> Iterator[StructureEntry]:
    """Yield one entry per row of an ASE database.

    Rows that are not 3D-periodic yield an entry with ``error`` set; the iteration goes on.

    Args:
        path: The database file (``.db`` SQLite or ``.json``).
        selection: An ASE db query string, e.g. ``"Fe,natoms<40"``; all rows when None.

    Yields:
        Entries with id ``"ase-db:<db stem>:<row id>"`` and provenance carrying the path, row id,
        unique id and the row's key-value pairs.

    Raises:
        SourceUnavailableError: No database at ``path``.
    """
    database = open_ase_db(path)
    stem = Path(path).stem
    with database:
        for row in database.select(selection):
            yield _entry_from_row(row, stem, Path(path).resolve())


def _entry_from_row(row: AtomsRow, stem: str, path: Path) -> StructureEntry:
    provenance: dict[str, Any] = {
        "path": str(path),
        "row_id": row.id,
        "unique_id": row["unique_id"],
        "key_value_pairs": json_safe(row.key_value_pairs),
    }
    return entry_from_row(row, f"{SOURCE}:{stem}:{row.id}", SOURCE, provenance)


def entry_from_row(
    row: AtomsRow, structure_id: str, source: str, provenance: dict[str, Any]
) -> StructureEntry:
    """The entry of one row: its structure and summary, or the reason it cannot be read."""
    try:
        structure = structure_from_row(row)
    except StructureError as error:
        return StructureEntry(structure_id, None, source, provenance, error=str(error))
    provenance.update(structure_summary(structure))
    return StructureEntry(structure_id, structure, source, provenance)
