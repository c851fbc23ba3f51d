"""Records: one per (structure, 3d absorber element), with its sites, charges and basis.

A record is deterministic given the structure: a FireWorks worker rebuilds it from the
structure alone. Its basis V diagonalizes the n = 5 quadrupole tensor averaged over all sites
of the element in the Cartesian frame (the inertia tensor when charges are unknown).
"""

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pymatgen.core import Element, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from vtc_fw import THREE_D_METALS
from vtc_fw.errors import Reason, StructureError, UsageError
from vtc_fw.keys import record_key
from vtc_fw.science.clusters import N_NEIGHBORS, Cluster, clusters_around
from vtc_fw.science.oxidation import OxidationResult, assign_oxidation_states
from vtc_fw.science.tensors import (
    BASIS_EXPONENT,
    inertia_tensor,
    principal_basis,
    quadrupole_tensor,
)
from vtc_fw.sources.geometry import check_geometry

SYMPREC = 0.01
"""Å tolerance of the symmetry analysis (OQMD positions carry ~1e-6 relaxation noise)."""


@dataclass(frozen=True)
class AbsorberSite:
    """A set of symmetry-equivalent absorbing sites.

    Attributes:
        index: The representative site (lowest index of the set).
        equivalent_indices: Every site of the set, representative included.
        rotations: Cartesian 3×3 R_j per equivalent site: its environment is the
            representative's rotated by R_j, so σ_j = R_j σ Rᵀ_j.
    """

    index: int
    equivalent_indices: tuple[int, ...]
    rotations: tuple[np.ndarray, ...]

    @property
    def multiplicity(self) -> int:
        """Number of sites in the set within the cell."""
        return len(self.equivalent_indices)


@dataclass
class Record:
    """One (structure, absorber element) pair, ready for featurization and FEFF.

    Attributes:
        key: ``"{structure_id}:{element}"``.
        structure_id: Stable id of the structure (source-prefixed).
        element: The absorbing 3d element X.
        structure: The ordered structure (no oxidation decoration).
        oxidation: Per-site oxidation states and the method that found them.
        absorber_sites: Inequivalent X sites with their equivalents.
        basis: 3×3, columns are the axes (ascending eigenvalue, right-handed).
        basis_source: ``"quadrupole"`` or ``"inertia"`` (charges unknown or all zero).
        spacegroup: International space-group number at :data:`SYMPREC`.
        site_clusters: Shell-complete cluster of every X site, keyed by site index.
        n_neighbors: Neighbour count that defines the clusters' shell radius (30: the
            paper's target; the basis always comes from the 30-atom clusters).
    """

    key: str
    structure_id: str
    element: str
    structure: Structure
    oxidation: OxidationResult
    absorber_sites: list[AbsorberSite]
    basis: np.ndarray
    basis_source: str
    spacegroup: int
    site_clusters: dict[int, Cluster] = field(repr=False)
    n_neighbors: int = N_NEIGHBORS

    @property
    def charges(self) -> np.ndarray | None:
        """Per-site oxidation states, or None when not assigned."""
        return self.oxidation.charges

    @property
    def absorber_indices(self) -> list[int]:
        """Every X site of the cell."""
        return sorted(self.site_clusters)

    def cluster(self, site_index: int, radius: float | None = None) -> Cluster:
        """The cluster of an X site: shell-complete, or every atom within ``radius`` Å.

        A radius beyond the stored shell triggers a new neighbour search (FEFF lists the
        cluster to the shell radius + 1.5 Å).
        """
        stored = self.site_clusters[site_index]
        if radius is None:
            return stored
        if radius <= stored.distances.max():
            return stored.within(radius)
        extra = radius - stored.shell_radius
        bigger = clusters_around(
            self.structure, [site_index], self.charges, self.n_neighbors, extra_radius=extra
        )
        return bigger[site_index].within(radius)

    def with_shell_atoms(self, n_neighbors: int) -> "Record":
        """This record with clusters to the ``n_neighbors``-th neighbour shell (same basis).

        The cluster-size convergence study of the target (benchmarks/cluster_convergence.py)
        and presets with a ``shell_atoms`` key use it; features keep the 30-atom clusters.
        """
        if n_neighbors == self.n_neighbors:
            return self
        clusters = clusters_around(self.structure, self.absorber_indices, self.charges, n_neighbors)
        return replace(self, site_clusters=clusters, n_neighbors=n_neighbors)

    def summary(self) -> dict[str, Any]:
        """JSON-able description (no structure): key, sites, basis, oxidation method."""
        return {
            "record_key": self.key,
            "structure_id": self.structure_id,
            "element": self.element,
            "formula": self.structure.composition.reduced_formula,
            "spacegroup": self.spacegroup,
            "oxidation_method": self.oxidation.method,
            "basis": self.basis.tolist(),
            "basis_source": self.basis_source,
            "absorber_sites": [
                {"index": s.index, "multiplicity": s.multiplicity} for s in self.absorber_sites
            ],
        }


def make_records(
    structure: Any,
    structure_id: str | None = None,
    elements: list[str] | None = None,
    symprec: float = SYMPREC,
    oxidation: OxidationResult | None = None,
) -> list[Record]:
    """Build every record of a structure: one per 3d element it contains.

    Args:
        structure: A pymatgen Structure, or a ``StructureEntry`` (its id is used).
        structure_id: Stable id; required for a bare Structure.
        elements: Restrict to these 3d elements (default: all present).
        symprec: Symmetry tolerance, Å.
        oxidation: Oxidation states computed earlier for this structure (same site order),
            e.g. stored in the ``structures`` collection; assigned afresh when None.

    Returns:
        The records, in periodic-table order of the absorber.

    Raises:
        StructureError: Unreadable, partially occupied, no 3d metal, or isolated sites.
    """
    structure, structure_id = _unwrap(structure, structure_id)
    structure = _validated(structure, structure_id)
    chosen = _chosen_absorbers(structure, structure_id, elements)
    oxidation = _checked_oxidation(oxidation, structure, structure_id)
    dataset = _symmetry_dataset(structure, symprec, structure_id)
    clusters = _absorber_clusters(structure, structure_id, chosen, oxidation.charges)
    reference_axes = _conventional_axes(structure, dataset)
    return [
        _record(structure, structure_id, x, oxidation, dataset, clusters, reference_axes)
        for x in chosen
    ]


def absorber_elements(symbols: list[str]) -> list[str]:
    """The absorbers a user asked for, each checked to be a 3d transition metal.

    Raises:
        UsageError: A symbol is not a chemical element, or not a 3d transition metal; the
            message names it.
    """
    for symbol in symbols:
        if symbol in THREE_D_METALS:
            continue
        if not Element.is_valid_symbol(symbol):
            raise UsageError(f"{symbol!r} is not a chemical element symbol (e.g. Fe)")
        raise UsageError(
            f"{symbol} is not a 3d transition metal: the absorber must be one of "
            f"{', '.join(THREE_D_METALS)}"
        )
    return list(symbols)


def check_usable(
    structure: Structure, structure_id: str, elements: list[str] | None = None
) -> list[str]:
    """The checks of :func:`make_records` that need no oxidation states or symmetry.

    Cheap enough for a submission (milliseconds): ordered, not empty, a sound geometry, a
    requested 3d metal present, and every absorber site with a cluster (no isolated atom).

    Returns:
        The absorbers of the records :func:`make_records` would build.

    Raises:
        StructureError: With the reason :func:`make_records` would give.
    """
    structure = _validated(structure, structure_id)
    chosen = _chosen_absorbers(structure, structure_id, elements)
    _absorber_clusters(structure, structure_id, chosen, None)
    return chosen


def _absorber_clusters(
    structure: Structure, structure_id: str, absorbers: list[str], charges: np.ndarray | None
) -> dict[int, Cluster]:
    """The cluster of every absorber site; a StructureError names the structure."""
    sites = [i for i, site in enumerate(structure) if site.specie.symbol in absorbers]
    try:
        return clusters_around(structure, sites, charges)
    except StructureError as error:
        raise StructureError(f"{structure_id}: {error}", error.reason) from error


def _chosen_absorbers(
    structure: Structure, structure_id: str, elements: list[str] | None
) -> list[str]:
    """The 3d metals of the structure among ``elements`` (all when None), or a StructureError."""
    present = [x for x in THREE_D_METALS if x in set(structure.symbol_set)]
    if elements is None:
        chosen = present
    else:
        chosen = [x for x in present if x in absorber_elements(elements)]
    if chosen:
        return chosen
    formula = structure.composition.reduced_formula
    if elements is None or not present:
        message = f"{structure_id} ({formula}) contains no 3d transition metal"
    else:
        asked, found = ", ".join(elements), ", ".join(present)
        message = f"{structure_id} ({formula}) contains no {asked}; its 3d metals: {found}"
    raise StructureError(message, reason=Reason.NO_3D_METAL)


def inequivalent_site_count(structure: Structure, element: str, symprec: float = SYMPREC) -> int:
    """Number of symmetry-inequivalent ``element`` sites: FEFF runs once per such site.

    Raises:
        StructureError: If the symmetry analysis fails.
    """
    formula = structure.composition.reduced_formula
    check_geometry(structure, formula)  # spglib dies on a NaN lattice: never hand it one
    dataset = _symmetry_dataset(structure, symprec, formula)
    return len(
        {
            int(dataset.equivalent_atoms[i])
            for i, site in enumerate(structure)
            if site.specie.symbol == element
        }
    )


def _unwrap(structure: Any, structure_id: str | None) -> tuple[Structure, str]:
    """Accept a Structure or a StructureEntry; refuse entries that failed to load."""
    if hasattr(structure, "structure_id"):
        entry = structure
        if entry.structure is None:
            raise StructureError(
                f"{entry.structure_id}: {entry.error or 'no structure'}",
                reason=entry.reason or "unreadable",
            )
        return entry.structure, structure_id or entry.structure_id
    if structure_id is None:
        raise ValueError("a bare Structure needs a structure_id")
    return structure, structure_id


def _validated(structure: Structure, structure_id: str) -> Structure:
    """An undecorated copy of an ordered structure, or a StructureError."""
    if not structure.is_ordered:
        partial = next(site for site in structure if not site.is_ordered)
        raise StructureError(
            f"{structure_id} has partially occupied sites (e.g. {partial.species_string}); "
            "FEFF needs an ordered structure: order it explicitly first",
            reason="disordered",
        )
    if len(structure) == 0:
        raise StructureError(f"{structure_id} has no atoms", reason="empty")
    check_geometry(structure, structure_id)  # before BVAnalyzer and spglib see it
    structure = structure.copy()
    structure.remove_oxidation_states()
    return structure


def _checked_oxidation(
    oxidation: OxidationResult | None, structure: Structure, structure_id: str
) -> OxidationResult:
    """Given oxidation states if they fit the structure, else freshly assigned ones."""
    if oxidation is None:
        return assign_oxidation_states(structure)
    if oxidation.charges is not None and len(oxidation.charges) != len(structure):
        raise ValueError(
            f"{structure_id}: {len(oxidation.charges)} stored oxidation states for "
            f"{len(structure)} sites"
        )
    return oxidation


def _symmetry_dataset(structure: Structure, symprec: float, structure_id: str) -> Any:
    """Spglib's symmetry dataset, or a StructureError when the analysis fails."""
    dataset = SpacegroupAnalyzer(structure, symprec=symprec).get_symmetry_dataset()
    if dataset is None:
        raise StructureError(
            f"{structure_id}: symmetry analysis failed at symprec={symprec} Å",
            reason="symmetry_failed",
        )
    return dataset


def _conventional_axes(structure: Structure, dataset: Any) -> np.ndarray:
    """Conventional standard lattice vectors (rows) in the structure's own Cartesian frame.

    They break ties between degenerate principal axes in a way that turns with the crystal.
    """
    return np.linalg.inv(dataset.transformation_matrix).T @ structure.lattice.matrix


def _record(
    structure: Structure,
    structure_id: str,
    element: str,
    oxidation: OxidationResult,
    dataset: Any,
    clusters: dict[int, Cluster],
    reference_axes: np.ndarray,
) -> Record:
    """The record of one absorber element."""
    indices = [i for i, site in enumerate(structure) if site.specie.symbol == element]
    own_clusters = {i: clusters[i] for i in indices}
    basis, source = _basis(list(own_clusters.values()), reference_axes)
    return Record(
        key=record_key(structure_id, element),
        structure_id=structure_id,
        element=element,
        structure=structure,
        oxidation=oxidation,
        absorber_sites=_absorber_sites(structure, indices, dataset),
        basis=basis,
        basis_source=source,
        spacegroup=int(dataset.number),
        site_clusters=own_clusters,
    )


def _basis(clusters: list[Cluster], reference_axes: np.ndarray) -> tuple[np.ndarray, str]:
    """Principal axes of the n = 5 quadrupole averaged over the sites (inertia as fallback)."""
    coords = [c.coords[1:] for c in clusters]
    charges = [c.charges[1:] for c in clusters if c.charges is not None]
    if len(charges) == len(clusters):  # every site has charges
        tensors = [
            quadrupole_tensor(r, q, BASIS_EXPONENT) for r, q in zip(coords, charges, strict=True)
        ]
        if np.mean([m for _, m in tensors]) > 0:
            return _averaged_basis(tensors, reference_axes), "quadrupole"
    tensors = [inertia_tensor(r, BASIS_EXPONENT) for r in coords]
    return _averaged_basis(tensors, reference_axes), "inertia"


def _averaged_basis(
    tensors: list[tuple[np.ndarray, float]], reference_axes: np.ndarray
) -> np.ndarray:
    """Basis of the site-averaged tensor, with degeneracies broken by the lattice."""
    mean_tensor = np.mean([t for t, _ in tensors], axis=0)
    scale = float(np.mean([m for _, m in tensors]))
    return principal_basis(mean_tensor, reference_axes, scale)


def _absorber_sites(structure: Structure, indices: list[int], dataset: Any) -> list[AbsorberSite]:
    """Group X sites into symmetry-equivalent sets with the rotation to each equivalent."""
    groups: dict[int, list[int]] = {}
    for index in indices:
        groups.setdefault(int(dataset.equivalent_atoms[index]), []).append(index)
    lattice = structure.lattice.matrix
    to_cartesian = lattice.T @ np.array(dataset.rotations) @ np.linalg.inv(lattice.T)
    sites = []
    for members in groups.values():
        representative = min(members)
        rotations = tuple(
            to_cartesian[_operation_mapping(structure, dataset, representative, j)]
            for j in sorted(members)
        )
        sites.append(AbsorberSite(representative, tuple(sorted(members)), rotations))
    return sorted(sites, key=lambda site: site.index)


def _operation_mapping(structure: Structure, dataset: Any, source: int, target: int) -> int:
    """Index of the symmetry operation that carries site ``source`` closest onto ``target``."""
    frac = structure.frac_coords
    images = np.einsum("kij,j->ki", dataset.rotations, frac[source]) + dataset.translations
    delta = images - frac[target]
    delta -= np.round(delta)
    misfit = np.linalg.norm(delta @ structure.lattice.matrix, axis=1)
    return int(np.argmin(misfit))
