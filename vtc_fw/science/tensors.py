"""Distance-weighted moment tensors of a cluster and their anisotropy sums.

Positions r_k are relative to the absorber, r = |r_k|, weights w_k = r^-n:

- quadrupole  Q = Σ q_k w_k (3 r_k r_kᵀ − r² 1)
- inertia     I = Σ     w_k (3 r_k r_kᵀ − r² 1)   (Q without charges: purely geometric)
- dipole      p = Σ q_k w_k r_k,   D = p pᵀ

Each tensor has an isotropic magnitude m (Σ|q| w r² for Q, Σ w r² for I, (Σ|q| w r)² for D)
so that the anisotropy sum Σ_{i<j} |T'_ii − T'_jj| / m is dimensionless and zero for a cubic site.
"""

from itertools import combinations

import numpy as np

BASIS_EXPONENT = 5
"""Weight exponent of the tensor that defines the basis: Σ q (3rrᵀ − r²1)/r⁵ is the electric
field gradient at the absorber, so the basis (and with it the FEFF polarizations) is fixed."""
DEGENERACY_TOLERANCE = 1e-4
"""Relative eigenvalue gap below which principal axes are taken as degenerate: well above the
splitting that relaxation noise in DFT coordinates (~1e-6) causes in a uniaxial or cubic tensor."""


def _traceless_outer(coords: np.ndarray) -> np.ndarray:
    """3 r rᵀ − r² 1 for every position; shape (N, 3, 3)."""
    r_squared = np.einsum("ki,ki->k", coords, coords)
    outer = 3.0 * np.einsum("ki,kj->kij", coords, coords)
    outer[:, [0, 1, 2], [0, 1, 2]] -= r_squared[:, None]
    return outer


def _weights(coords: np.ndarray, exponent: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances r (Å) and weights r^-n of the neighbours (rows with r > 0)."""
    distances = np.linalg.norm(coords, axis=1)
    return distances, distances ** (-float(exponent))


def quadrupole_tensor(
    coords: np.ndarray, charges: np.ndarray, exponent: float
) -> tuple[np.ndarray, float]:
    """Charge-weighted quadrupole tensor Q and its isotropic magnitude Σ|q| w r².

    Args:
        coords: Neighbour positions relative to the absorber, (N, 3), Å; no row at the origin.
        charges: Neighbour oxidation states, (N,).
        exponent: Weight exponent n of w = r^-n.
    """
    distances, weights = _weights(coords, exponent)
    tensor = np.einsum("k,kij->ij", charges * weights, _traceless_outer(coords))
    return tensor, float(np.sum(np.abs(charges) * weights * distances**2))


def inertia_tensor(coords: np.ndarray, exponent: float) -> tuple[np.ndarray, float]:
    """Purely geometric tensor I (Q with unit charges) and its magnitude Σ w r²."""
    distances, weights = _weights(coords, exponent)
    tensor = np.einsum("k,kij->ij", weights, _traceless_outer(coords))
    return tensor, float(np.sum(weights * distances**2))


def dipole_tensor(
    coords: np.ndarray, charges: np.ndarray, exponent: float
) -> tuple[np.ndarray, float]:
    """Dipole tensor D = p pᵀ with p = Σ q w r, and its magnitude (Σ|q| w r)²."""
    distances, weights = _weights(coords, exponent)
    dipole = np.einsum("k,ki->i", charges * weights, coords)
    return np.outer(dipole, dipole), float(np.sum(np.abs(charges) * weights * distances) ** 2)


def anisotropy_sum(tensor_in_basis: np.ndarray, magnitude: float) -> float | None:
    """Σ_{i<j} |T'_ii − T'_jj| / m (dimensionless), or None when m vanishes (no charges)."""
    if not magnitude > 0:
        return None
    diagonal = np.diag(tensor_in_basis)
    total = sum(abs(diagonal[i] - diagonal[j]) for i, j in combinations(range(3), 2))
    return float(total / magnitude)


def principal_basis(tensor: np.ndarray, reference_axes: np.ndarray, scale: float) -> np.ndarray:
    """Eigenvectors of a symmetric tensor as a right-handed basis, ascending eigenvalue.

    Degenerate eigenvalues leave their eigenvectors arbitrary; within a degenerate subspace
    the axes are taken from ``reference_axes`` (the conventional lattice vectors in the same
    Cartesian frame) so that the basis turns with the structure and does not depend on
    round-off.

    Args:
        tensor: Symmetric 3×3 tensor.
        reference_axes: Rows are three linearly independent reference directions.
        scale: Magnitude against which eigenvalue gaps are compared.

    Returns:
        V with the axes as columns, det V = +1.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(0.5 * (tensor + tensor.T))
    tolerance = DEGENERACY_TOLERANCE * max(scale, np.abs(eigenvalues).max(), 1e-300)
    basis = eigenvectors.copy()
    for group in _degenerate_groups(eigenvalues, tolerance):
        basis[:, group] = _span_from_references(eigenvectors[:, group], reference_axes)
    if np.linalg.det(basis) < 0:
        basis[:, 2] *= -1.0
    return basis


def _degenerate_groups(eigenvalues: np.ndarray, tolerance: float) -> list[list[int]]:
    """Index groups (size ≥ 2) of ascending eigenvalues closer than ``tolerance``."""
    groups: list[list[int]] = [[0]]
    for index in (1, 2):
        if eigenvalues[index] - eigenvalues[index - 1] <= tolerance:
            groups[-1].append(index)
        else:
            groups.append([index])
    return [group for group in groups if len(group) > 1]


def _span_from_references(subspace: np.ndarray, reference_axes: np.ndarray) -> np.ndarray:
    """Orthonormal vectors spanning ``subspace`` (columns), aligned with the references."""
    projector = subspace @ subspace.T
    chosen: list[np.ndarray] = []
    for reference in reference_axes:
        vector = projector @ reference
        for previous in chosen:
            vector = vector - (previous @ vector) * previous
        norm = np.linalg.norm(vector)
        if norm > 1e-6 * np.linalg.norm(reference):
            chosen.append(vector / norm)
        if len(chosen) == subspace.shape[1]:
            break
    return np.array(chosen).T


def normalized_diagonals_by_exponent(
    coords: np.ndarray, charges: np.ndarray | None, basis: np.ndarray, exponents: np.ndarray
) -> dict[str, np.ndarray]:
    """Diagonals of one site's moment tensors in the basis, at many exponents at once.

    Quadrupole, dipole and inertia tensors, each divided by the tensor's isotropic magnitude.

    Only the diagonal of a tensor in the basis enters an anisotropy sum (:func:`pair_sum` of
    these equals :func:`anisotropy_sum` of the full tensor rotated into the basis), so with x = r V
    (neighbour positions in the basis) the diagonals are Σ q w (3 x_i² − r²) for Q,
    Σ w (3 x_i² − r²) for I and p_i² with p = Σ q w x for D: two matrix products per tensor.

    Args:
        coords: Neighbour positions relative to the absorber, (N, 3), Å.
        charges: Neighbour oxidation states (N,), or None.
        basis: 3×3 basis, axes as columns.
        exponents: Weight exponents n, shape (K,).

    Returns:
        ``{"QAMS", "DAMS", "IAMS"}`` → arrays (K, 3), keyed by the sum each gives; NaN where
        undefined (no or zero charges).
    """
    positions = coords @ basis
    distances = np.linalg.norm(coords, axis=1)
    diagonal_terms = 3.0 * positions**2 - (distances**2)[:, None]
    weights = distances[None, :] ** (-np.asarray(exponents, dtype=float)[:, None])
    diagonals = {"IAMS": (weights @ diagonal_terms) / (weights @ distances**2)[:, None]}
    if charges is None:
        diagonals["QAMS"] = diagonals["DAMS"] = np.full((len(weights), 3), np.nan)
        return diagonals
    charged, absolute = weights * charges, weights * np.abs(charges)
    with np.errstate(divide="ignore", invalid="ignore"):
        quadrupole_magnitude = absolute @ distances**2
        diagonals["QAMS"] = (charged @ diagonal_terms) / quadrupole_magnitude[:, None]
        dipole_magnitude = (absolute @ distances) ** 2
        diagonals["DAMS"] = (charged @ positions) ** 2 / dipole_magnitude[:, None]
    for name, magnitude in (("QAMS", quadrupole_magnitude), ("DAMS", dipole_magnitude)):
        diagonals[name][~(magnitude > 0)] = np.nan
    return diagonals


def pair_sum(diagonals: np.ndarray) -> np.ndarray:
    """|d1 − d2| + |d1 − d3| + |d2 − d3| over the last axis of diagonals (..., 3)."""
    return sum(np.abs(diagonals[..., i] - diagonals[..., j]) for i, j in combinations(range(3), 2))
