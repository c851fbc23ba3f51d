"""Poison-input checks of a structure's geometry, before any C library (spglib) sees it.

spglib crashes the whole process (a segmentation fault, not an exception) on a lattice with a
NaN, and a negative lattice parameter in a CIF silently gives a left-handed cell that FEFF
"computes". Every path from input to spglib or FEFF (:func:`vtc_fw.science.records.make_records`,
deduplication, the command line) calls :func:`check_geometry` first; a structure that fails is
a one-line error or a failed document with its reason, never a dead worker.
"""

import numpy as np
from pymatgen.core import Structure

from vtc_fw.errors import Reason, StructureError

MAX_SITES = 1000
"""Largest cell accepted (sites). The OQMD-ICSD 3d-TM set's largest has 168; a cluster around
an absorber is built from neighbour lists whose cost grows with the cell."""
MIN_CELL_FILL = 0.01
"""Smallest volume / (a·b·c) of a lattice: below it the cell is (nearly) flat. The OQMD-ICSD
set's smallest is above 0.05."""
MIN_LENGTH = 0.5
"""Shortest lattice vector accepted, Å (no crystal's repeat is shorter than a bond)."""
MIN_DISTANCE = 0.5
"""Å: two atoms closer than this overlap (the shortest bond, H–H, is 0.74 Å)."""


def geometry_problem(structure: Structure) -> tuple[Reason, str] | None:
    """Why the structure's geometry cannot be used, or None when it can.

    Returns:
        ``(reason, message)``: non-finite lattice or coordinates, a degenerate or left-handed
        lattice (a negative lattice parameter), a vector shorter than :data:`MIN_LENGTH`, more
        than :data:`MAX_SITES` sites, or two atoms closer than :data:`MIN_DISTANCE`.
    """
    matrix = np.asarray(structure.lattice.matrix, dtype=float)
    if not np.isfinite(matrix).all():
        return Reason.NON_FINITE, "its lattice has a non-finite entry (NaN or infinity)"
    if len(structure) > MAX_SITES:
        return Reason.TOO_LARGE, f"{len(structure)} sites, more than the limit of {MAX_SITES}"
    if len(structure) and not np.isfinite(structure.frac_coords).all():
        return Reason.NON_FINITE, "a site has a non-finite coordinate (NaN or infinity)"
    lengths = np.linalg.norm(matrix, axis=1)
    if lengths.min() < MIN_LENGTH:
        return Reason.DEGENERATE_LATTICE, f"a lattice vector is {lengths.min():.3g} Å long"
    determinant = float(np.linalg.det(matrix))
    if determinant <= 0:
        return Reason.DEGENERATE_LATTICE, (
            "its lattice is left-handed or flat (a negative or zero lattice parameter?)"
        )
    if determinant / lengths.prod() < MIN_CELL_FILL:
        return Reason.DEGENERATE_LATTICE, "its lattice vectors are (nearly) coplanar"
    return _overlap(structure)


def _overlap(structure: Structure) -> tuple[Reason, str] | None:
    """Two sites (or a site and another's periodic image) closer than :data:`MIN_DISTANCE`."""
    if len(structure) == 0:
        return None
    centers, neighbors, _, distances = structure.get_neighbor_list(MIN_DISTANCE)
    if len(distances) == 0:
        return None
    pair = int(np.argmin(distances))
    first, second = int(centers[pair]), int(neighbors[pair])
    return Reason.OVERLAPPING_ATOMS, (
        f"sites {first} ({structure[first].species_string}) and {second} "
        f"({structure[second].species_string}) are {distances[pair]:.3f} Å apart: overlapping atoms"
    )


def check_geometry(structure: Structure, structure_id: str) -> None:
    """Raise the structure's :func:`geometry_problem` as a StructureError.

    Raises:
        StructureError: With the problem's reason, naming ``structure_id``.
    """
    problem = geometry_problem(structure)
    if problem is not None:
        reason, message = problem
        raise StructureError(f"{structure_id}: {message}", reason=reason)
