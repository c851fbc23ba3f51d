"""Merge structures that several sources (or one source, twice) hold for the same compound."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
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
    entries = list(entries)
    by_formula: dict[str, dict[int, Structure]] = defaultdict(dict)
    for index, entry in enumerate(entries):
        if entry.structure is not None and geometry_problem(entry.structure) is None:
            by_formula[entry.structure.composition.reduced_formula][index] = entry.structure
    duplicate_of: dict[int, int] = {}
    for structures in by_formula.values():
        if len(structures) > 1:
            duplicate_of |= _match_within_formula(structures, symprec)
    return DeduplicationResult(
        unique=[entry for index, entry in enumerate(entries) if index not in duplicate_of],
        duplicate_of={
            entries[dropped].structure_id: entries[kept].structure_id
            for dropped, kept in duplicate_of.items()
        },
    )


def _match_within_formula(structures: Mapping[int, Structure], symprec: float) -> dict[int, int]:
    """{dropped index: kept index} among structures of one formula, the first of a match kept."""
    matcher = StructureMatcher()
    primitives = {index: _reduced_primitive(structure) for index, structure in structures.items()}
    kept_by_key: dict[CompoundKey, list[int]] = defaultdict(list)
    duplicate_of: dict[int, int] = {}
    for index, structure in structures.items():
        kept = kept_by_key[_compound_key(structure, primitives[index], symprec)]
        twin = next((k for k in kept if _same(matcher, primitives[k], primitives[index])), None)
        if twin is None:
            kept.append(index)
        else:
            duplicate_of[index] = twin
    return duplicate_of


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
