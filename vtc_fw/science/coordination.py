"""Charge-free descriptors of an absorber's first coordination shell (beyond the paper).

The paper's moment sums weight every atom of the 30-neighbour cluster by r^-n and need
oxidation states for QAMS and DAMS. These descriptors look only at the nearest neighbours,
weighted by Hoppe's effective coordination (R. Hoppe, Z. Kristallogr. 150, 23 (1979)): with
bond lengths l_i, the weighted mean length l_av solves l_av = Σ w_i l_i / Σ w_i with
w_i = exp(1 − (l_i / l_av)^6), and ECoN = Σ w_i. Atoms of the first shell weigh ≈ 1, the next
shell ≈ 0, without a cut-off to choose. On the unit bond vectors u_i:

* ``econ``: the effective coordination number Σ w_i (6 for an octahedron).
* ``bond_length``: l_av, Å.
* ``bond_distortion``: Σ w_i |l_i − l_av| / (l_av Σ w_i), Baur's distortion index, weighted.
* ``off_centering``: |Σ w_i u_i| / Σ w_i: 0 for a centrosymmetric shell, 1 for one ligand.
* ``shell_anisotropy``: λ_max − λ_min of Σ w_i u_i u_iᵀ / Σ w_i (trace 1): 0 for cubic,
  octahedral and tetrahedral shells, 1/2 for square-planar, 1 for linear coordination.
* ``ligand_en_difference``: weighted mean Pauling electronegativity of the shell minus the
  absorber's (covalency; elements without a Pauling value are left out).

They are used by the ``*_first_shell`` variants of :mod:`vtc_fw.ml.comparison`, not by the
paper's model.
"""

from __future__ import annotations

import numpy as np

from vtc_fw.science.clusters import Cluster
from vtc_fw.science.features import pauling_electronegativity
from vtc_fw.science.records import Record

FIRST_SHELL_FEATURES: tuple[str, ...] = (
    "econ",
    "bond_length",
    "bond_distortion",
    "off_centering",
    "shell_anisotropy",
    "ligand_en_difference",
)
"""The descriptors, in the order models receive them."""
ECON_TOLERANCE = 1e-9
"""Å: the iteration for l_av stops when it moves less than this."""
ECON_MAX_ITERATIONS = 100


def hoppe_weights(lengths: np.ndarray) -> tuple[np.ndarray, float]:
    """Hoppe's weights w_i = exp(1 − (l_i / l_av)^6) and the weighted mean bond length l_av.

    Args:
        lengths: Distances of the neighbours from the absorber, Å (all > 0).

    Returns:
        The weights and l_av, found by fixed-point iteration from the shortest length.
    """
    mean = float(lengths.min())
    for _ in range(ECON_MAX_ITERATIONS):
        weights = np.exp(1.0 - (lengths / mean) ** 6)
        updated = float(weights @ lengths / weights.sum())
        if abs(updated - mean) < ECON_TOLERANCE:
            break
        mean = updated
    return np.exp(1.0 - (lengths / mean) ** 6), mean


def first_shell_descriptors(cluster: Cluster) -> dict[str, float]:
    """The :data:`FIRST_SHELL_FEATURES` of one absorber site."""
    vectors = cluster.coords[cluster.neighbors]
    lengths = np.linalg.norm(vectors, axis=1)
    weights, mean = hoppe_weights(lengths)
    total = weights.sum()
    units = vectors / lengths[:, None]
    shape = np.einsum("i,ij,ik->jk", weights, units, units) / total
    eigenvalues = np.linalg.eigvalsh(shape)
    electronegativity = np.array(
        [pauling_electronegativity(symbol) for symbol in cluster.species[1:]]
    )
    known = np.isfinite(electronegativity)
    ligand_en = weights[known] @ electronegativity[known] / weights[known].sum()
    return {
        "econ": float(total),
        "bond_length": mean,
        "bond_distortion": float(weights @ np.abs(lengths - mean) / (mean * total)),
        "off_centering": float(np.linalg.norm(weights @ units) / total),
        "shell_anisotropy": float(eigenvalues[-1] - eigenvalues[0]),
        "ligand_en_difference": float(ligand_en - pauling_electronegativity(cluster.species[0])),
    }


def record_first_shell(record: Record) -> dict[str, float]:
    """The descriptors of a record, averaged over all its absorber sites (as the moment sums)."""
    per_site = [first_shell_descriptors(record.site_clusters[i]) for i in record.absorber_indices]
    return {
        name: float(np.mean([site[name] for site in per_site])) for name in FIRST_SHELL_FEATURES
    }
