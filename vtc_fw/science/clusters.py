"""Shell-complete atomic clusters around absorbing sites.

A cluster holds every atom within the radius r30 of the 30th-nearest neighbour plus a margin,
so a coordination shell is never cut in half (a cut shell breaks the symmetry of the site).
The same radius sets FEFF's SCF and FMS radii.

The margin is max(0.05 Å, 6 % of r30). science.md's literal rule is a fixed 0.05 Å
(``relative_margin=0``, still selectable); it cuts shells that a small distortion splits:
NiO stretched along c by more than 1.2 % loses its two apical Ni at ~4.2 Å while keeping the
four in-plane ones, and its QAMS then *falls* with further stretching (0.067 at 2 %, 0.010 at
5 %, n = 5). A relative margin keeps a split shell whole up to ~6 % strain and still stops
before the next shell of rock salt (11.8 % farther out).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

from vtc_fw.errors import StructureError

N_NEIGHBORS = 30
"""Number of nearest neighbours whose shell defines the cluster radius."""
SHELL_TOLERANCE = 0.05
"""Smallest margin (Å) added to the 30th-neighbour distance so that its shell stays whole."""
RELATIVE_SHELL_MARGIN = 0.06
"""Margin as a fraction of the 30th-neighbour distance, used when larger than 0.05 Å."""
MIN_DISTANCE = 0.5
"""Å: atoms closer than this overlap, a broken structure rather than a crystal."""
MAX_CLUSTER_RADIUS = 15.0
"""Å beyond which a site is considered isolated (a molecule or atom in vacuum)."""


@dataclass(frozen=True)
class Cluster:
    """Atoms around one absorbing site, absorber first, then by increasing distance.

    Attributes:
        site_index: Index of the absorber in the structure.
        species: Element symbols, absorber first.
        coords: Cartesian positions relative to the absorber, shape (N, 3), Å.
        charges: Oxidation states, shape (N,), or None when they could not be assigned.
        shell_radius: 30th-neighbour distance + margin: the SCF and FMS radius, Å.
    """

    site_index: int
    species: tuple[str, ...]
    coords: np.ndarray
    charges: np.ndarray | None
    shell_radius: float

    @property
    def distances(self) -> np.ndarray:
        """Distance of every atom from the absorber, shape (N,), Å (0 for the absorber)."""
        return np.linalg.norm(self.coords, axis=1)

    @property
    def neighbors(self) -> slice:
        """Slice selecting every atom but the absorber."""
        return slice(1, None)

    def within(self, radius: float) -> "Cluster":
        """The sub-cluster of atoms no farther than ``radius`` Å."""
        keep = self.distances <= radius
        return Cluster(
            site_index=self.site_index,
            species=tuple(s for s, k in zip(self.species, keep, strict=True) if k),
            coords=self.coords[keep],
            charges=None if self.charges is None else self.charges[keep],
            shell_radius=self.shell_radius,
        )


def _initial_radius(structure: Structure, n_neighbors: int) -> float:
    """A radius expected to hold ``n_neighbors`` atoms at the structure's number density, Å."""
    number_density = len(structure) / structure.volume
    return 1.3 * (3.0 * (n_neighbors + 1) / (4.0 * np.pi * number_density)) ** (1.0 / 3.0) + 1.0


def clusters_around(
    structure: Structure,
    site_indices: Sequence[int],
    charges: np.ndarray | None = None,
    n_neighbors: int = N_NEIGHBORS,
    shell_tolerance: float = SHELL_TOLERANCE,
    relative_margin: float = RELATIVE_SHELL_MARGIN,
    extra_radius: float = 0.0,
) -> dict[int, Cluster]:
    """Shell-complete clusters around several sites, from one periodic neighbour search.

    Args:
        structure: An ordered structure.
        site_indices: Absorbing sites.
        charges: Per-site oxidation states of the structure, or None.
        n_neighbors: Neighbour count that defines the shell radius.
        shell_tolerance: Smallest margin (Å) added to the ``n_neighbors``-th distance.
        relative_margin: Margin as a fraction of that distance when larger (0: science.md).
        extra_radius: Å of atoms listed beyond the shell radius (FEFF lists r + 1.5 Å).

    Returns:
        ``{site index: Cluster}``.

    Raises:
        StructureError: If atoms overlap (closer than 0.5 Å) or a site has fewer than
            ``n_neighbors`` atoms within 15 Å.
    """
    pending = list(dict.fromkeys(site_indices))
    clusters: dict[int, Cluster] = {}
    radius = min(_initial_radius(structure, n_neighbors), MAX_CLUSTER_RADIUS) + extra_radius
    while pending:
        margin = (shell_tolerance, relative_margin)
        found = _search(structure, pending, radius, charges, n_neighbors, margin)
        for index, cluster in found.items():
            if cluster.shell_radius > MAX_CLUSTER_RADIUS:
                continue
            if cluster.shell_radius + extra_radius <= radius:
                clusters[index] = cluster.within(cluster.shell_radius + extra_radius)
        pending = [index for index in pending if index not in clusters]
        if pending and radius >= MAX_CLUSTER_RADIUS + extra_radius:
            raise StructureError(
                f"site {pending[0]} has fewer than {n_neighbors} atoms within "
                f"{MAX_CLUSTER_RADIUS:.0f} Å: an isolated atom or molecule, not a crystal",
                reason="isolated_site",
            )
        radius = min(radius * 1.35, MAX_CLUSTER_RADIUS + extra_radius)
    return clusters


def _search(
    structure: Structure,
    site_indices: list[int],
    radius: float,
    charges: np.ndarray | None,
    n_neighbors: int,
    margin: tuple[float, float],
) -> dict[int, Cluster]:
    """Clusters of all atoms within ``radius`` of each site, shell radius computed per site.

    ``margin`` is (smallest margin in Å, relative margin).
    """
    centers, points, offsets, distances = structure.get_neighbor_list(
        radius, sites=[structure[i] for i in site_indices]
    )
    frac = structure.frac_coords
    symbols = [site.specie.symbol for site in structure]
    clusters = {}
    for position, index in enumerate(site_indices):
        # get_neighbor_list(sites=...) returns the centre itself at distance ~1e-15
        is_self = (points == index) & (distances < 1e-8)
        mine = np.flatnonzero((centers == position) & ~is_self)
        if mine.size < n_neighbors:
            continue
        order = mine[np.argsort(distances[mine], kind="stable")]
        if distances[order[0]] < MIN_DISTANCE:
            raise StructureError(
                f"site {index} has a neighbour at {distances[order[0]]:.3f} Å: overlapping "
                "atoms, not a physical structure",
                reason="overlapping_atoms",
            )
        nth_distance = float(distances[order[n_neighbors - 1]])
        shell_radius = nth_distance + max(margin[0], margin[1] * nth_distance)
        neighbor_frac = frac[points[order]] + offsets[order]
        coords = structure.lattice.get_cartesian_coords(neighbor_frac - frac[index])
        coords = np.vstack([np.zeros(3), coords])
        site_ids = np.concatenate([[index], points[order]])
        clusters[index] = Cluster(
            site_index=index,
            species=tuple(symbols[i] for i in site_ids),
            coords=coords,
            charges=None if charges is None else np.asarray(charges, dtype=float)[site_ids],
            shell_radius=shell_radius,
        )
    return clusters
