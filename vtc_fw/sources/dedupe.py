"""Merge structures that several sources (or one source, twice) hold for the same compound."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from vtc_fw.sources.entry import StructureEntry
from vtc_fw.sources.geometry import geometry_problem

DEDUPE_SYMPREC = 0.1
"""spglib tolerance (Å) of the space-group key; OQMD relaxations carry noise of ~1e-6."""


class CompoundKey(NamedTuple):
    """What two entries of one compound must share before their structures are compared."""

    formula: str
    space_group: int | None
    primitive_sites: int


@dataclass
class DeduplicationResult:
    """The entries kept and, for each one dropped, the id of the entry it duplicates.

    Args:
        unique: Kept entries in input order (unreadable entries pass through, errors kept).
        duplicate_of: ``{dropped structure_id: kept structure_id}``.
    """

    unique: list[StructureEntry] = field(default_factory=list)
    duplicate_of: dict[str, str] = field(default_factory=dict)

    @property
    def n_merged(self) -> int:
        """How many entries were dropped as duplicates."""
        return len(self.duplicate_of)


def compound_key(structure: Structure, symprec: float = DEDUPE_SYMPREC) -> CompoundKey:
    """Reduced formula, space group number at ``symprec`` and sites of the primitive cell.

    The primitive site count only splits what StructureMatcher would split anyway (it never
    matches cells of different primitive size); it spares most of its comparisons.
    """
    return _compound_key(structure, _reduced_primitive(structure), symprec)


def _compound_key(structure: Structure, primitive: Structure, symprec: float) -> CompoundKey:
    formula = structure.composition.reduced_formula
    try:
        number = SpacegroupAnalyzer(structure, symprec=symprec).get_space_group_number()
    except (ValueError, TypeError):  # spglib found no symmetry dataset
        number = None
    return CompoundKey(formula, number, len(primitive))


def _reduced_primitive(structure: Structure) -> Structure:
    """The Niggli-reduced primitive cell, as StructureMatcher reduces it before every fit."""
    return structure.get_reduced_structure(reduction_algo="niggli").get_primitive_structure()


class DuplicateFinder:
    """The first structure of each compound, remembered so that later copies are found.

    Structures of one reduced formula are compared as :func:`deduplicate` describes; the
    space group and primitive cell of a structure are computed only once a second structure
    of its formula arrives.

    Args:
        symprec: Space-group tolerance (Å).
    """

    def __init__(self, symprec: float = DEDUPE_SYMPREC) -> None:
        self._symprec = symprec
        self._matcher = StructureMatcher()
        self._kept: dict[str, list[_Kept]] = defaultdict(list)

    def twin_of(self, structure_id: str, structure: Structure) -> str | None:
        """The id of a structure seen before that this one duplicates, else None.

        A structure that duplicates none is remembered (the first of a compound wins);
        one whose geometry is unusable is never matched nor remembered.
        """
        if geometry_problem(structure) is not None:
            return None
        kept = self._kept[structure.composition.reduced_formula]
        candidate = _Kept(structure_id, structure)
        if kept:
            key = candidate.key(self._symprec)
            for earlier in kept:
                if earlier.key(self._symprec) == key and _same(
                    self._matcher, earlier.primitive, candidate.primitive
                ):
                    return earlier.structure_id
        kept.append(candidate)
        return None


class _Kept:
    """A remembered structure with its primitive cell and compound key, computed on demand."""

    def __init__(self, structure_id: str, structure: Structure) -> None:
        self.structure_id = structure_id
        self.structure = structure
        self._primitive: Structure | None = None
        self._key: CompoundKey | None = None

    @property
    def primitive(self) -> Structure:
        if self._primitive is None:
            self._primitive = _reduced_primitive(self.structure)
        return self._primitive

    def key(self, symprec: float) -> CompoundKey:
        if self._key is None:
            self._key = _compound_key(self.structure, self.primitive, symprec)
        return self._key


def deduplicate(
    entries: Iterable[StructureEntry], symprec: float = DEDUPE_SYMPREC
) -> DeduplicationResult:
    """Keep one entry per compound: same reduced formula, same space group and same structure.

    Entries sharing formula and space group are compared with pymatgen's StructureMatcher
    (default tolerances, volumes scaled, so DFT-relaxed and experimental cells of one compound
    match, on primitive cells); genuinely different polymorphs sharing both are kept. The first
    entry of a compound wins: list sources in order of preference. Space groups are only
    computed for formulas that occur more than once.

    Args:
        entries: Entries from any sources.
        symprec: Space-group tolerance (Å).

    Returns:
        The unique entries and the map of merged ids.
    """
    finder = DuplicateFinder(symprec)
    result = DeduplicationResult()
    for entry in entries:
        twin = (
            None if entry.structure is None else finder.twin_of(entry.structure_id, entry.structure)
        )
        if twin is None:
            result.unique.append(entry)
        else:
            result.duplicate_of[entry.structure_id] = twin
    return result


def _same(matcher: StructureMatcher, first: Structure, second: Structure) -> bool:
    """Whether two reduced primitive cells are one structure (identical copies short-cut)."""
    return _identical(first, second) or matcher.fit(first, second, skip_structure_reduction=True)


def _identical(first: Structure, second: Structure) -> bool:
    """The same cell and sites in the same order (one row stored twice), checked in numpy."""
    return (
        len(first) == len(second)
        and first.species_and_occu == second.species_and_occu
        and np.allclose(first.lattice.matrix, second.lattice.matrix, atol=1e-6)
        and np.allclose(first.frac_coords, second.frac_coords, atol=1e-6)
    )
