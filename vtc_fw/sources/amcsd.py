"""Experimental mineral structures from the AMCSD copy bundled with ``larixite``.

``larixite`` ships ``amcsd_cif1.db`` (SQLite, 9,275 CIFs) and rebuilds each CIF from it with
``AMCSD().get_cif(id)``. Nothing here downloads: ``larixite.amcsd.get_amcsd()`` (which fetches the
full database) is never called. About 45 % of the minerals are partially occupied; they are
yielded with ``provenance["ordered"] = False`` and rejected later, with that reason.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Iterator
from importlib.metadata import version
from typing import Any

from vtc_fw import THREE_D_METALS
from vtc_fw.errors import SourceUnavailableError, StructureError
from vtc_fw.sources.entry import StructureEntry, structure_summary
from vtc_fw.sources.readers import parse_cif_text

SOURCE = "amcsd"
AMCSD_CREDIT = (
    "American Mineralogist Crystal Structure Database (rruff.geo.arizona.edu/AMS/amcsd.php): "
    "R. T. Downs, M. Hall-Wallace, Am. Mineral. 88, 247 (2003); local copy shipped in larixite "
    "(MIT). Cite the original publication of each structure (see provenance)."
)


def open_amcsd() -> Any:
    """The bundled AMCSD database of larixite, opened read-only.

    Raises:
        SourceUnavailableError: larixite or its bundled ``amcsd_cif1.db`` is missing.
    """
    try:
        from larixite.amcsd import AMCSD
    except ImportError as error:
        raise SourceUnavailableError(
            "AMCSD structures need the larixite package (pip install larixite)", "missing_package"
        ) from error
    try:
        return AMCSD(read_only=True)
    except (OSError, ValueError) as error:
        raise SourceUnavailableError(
            f"larixite's bundled AMCSD database cannot be opened: {error}", "missing_database"
        ) from error


def amcsd_ids(amcsd: Any, only_3d: bool = True) -> list[int]:
    """Ids of the CIFs in the local database, ascending; those with a 3d metal if ``only_3d``."""
    from sqlalchemy import select

    cif_table = amcsd.tables["cif"]
    ids = {row[0] for row in amcsd.execall(select(cif_table.c.id))}
    if only_3d:
        # cif_elements also lists CIFs of the full database that this trimmed copy lacks
        metals = set(THREE_D_METALS)
        ids &= {
            cif_id for cif_id, elements in amcsd.get_cif_elems().items() if metals & set(elements)
        }
    return sorted(ids)


def iter_amcsd(
    ids: Iterable[int] | None = None, limit: int | None = None, only_3d: bool = True
) -> Iterator[StructureEntry]:
    """Yield AMCSD minerals as entries with id ``"amcsd:<id>"``.

    Args:
        ids: AMCSD ids to read; all CIFs of the local database (with a 3d metal, if ``only_3d``)
            when None. Ids absent from the local copy yield an entry with ``error`` set.
        limit: At most this many entries.
        only_3d: When ``ids`` is None, read only CIFs listing a 3d transition metal.

    Raises:
        SourceUnavailableError: larixite or its database is missing.
    """
    amcsd = open_amcsd()
    selected = list(ids) if ids is not None else amcsd_ids(amcsd, only_3d)
    package = {"package": "larixite", "package_version": version("larixite")}
    for cif_id in selected[:limit]:
        yield _entry_from_cif(amcsd, int(cif_id), package)


def _entry_from_cif(amcsd: Any, cif_id: int, package: dict[str, str]) -> StructureEntry:
    structure_id = f"{SOURCE}:{cif_id}"
    provenance: dict[str, Any] = {
        "amcsd_id": cif_id,
        "database": "amcsd_cif1.db",
        **package,
        "credit": AMCSD_CREDIT,
    }
    # larixite prints its own parsing complaints; keep them as warnings of this entry
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        cif = amcsd.get_cif(cif_id)
    if cif is None:
        message = f"AMCSD id {cif_id} is not in larixite's local database"
        return StructureEntry(structure_id, None, SOURCE, provenance, error=message)
    provenance.update(_publication(cif))
    try:
        structures, parser_warnings = parse_cif_text(cif.ciftext)
    except StructureError as error:
        return StructureEntry(structure_id, None, SOURCE, provenance, error=f"{cif_id}: {error}")
    provenance["warnings"] = printed.getvalue().splitlines() + parser_warnings
    provenance.update(structure_summary(structures[0]))
    return StructureEntry(structure_id, structures[0], SOURCE, provenance)


def _publication(cif: Any) -> dict[str, Any]:
    publication = cif.publication
    return {
        "mineral": cif.get_mineralname(),
        "formula_as_published": cif.formula,
        "space_group_hm": cif.hm_symbol,
        "journal": publication.journalname,
        "year": publication.year,
        "volume": publication.volume,
        "pages": f"{publication.page_first}-{publication.page_last}",
        "authors": list(publication.authors),
    }
