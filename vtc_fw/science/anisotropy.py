"""Spectral anisotropy: the SAM/SAMS of polarized spectra and the dipole σ-tensor algebra.

In the dipole approximation the emission of one site for a linear polarization ``e`` is
``μ(e) = eᵀ σ(E) e`` with σ a real symmetric 3×3 tensor at every energy. Six polarizations
fix σ; the symmetry operations of the crystal then give every equivalent site's σ as
``R σ Rᵀ`` without running FEFF again.
"""

from collections.abc import Sequence
from itertools import combinations

import numpy as np

SIX_POLARIZATIONS: np.ndarray = (
    np.array(
        [
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [1.0, 1.0, 0.0],
            [1.0, 0.0, 1.0],
            [0.0, 1.0, 1.0],
        ]
    )
    / np.sqrt([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])[:, None]
)
"""Unit polarization vectors that determine σ: e_x, e_y, e_z, then the three diagonals
(e_x+e_y)/√2, (e_x+e_z)/√2, (e_y+e_z)/√2, in the frame of the record's basis."""


def sam_matrix(energies: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Spectral anisotropy matrix of three polarized spectra on one energy grid.

    ``SAM_ij = sqrt(∫(μ_i − μ_j)² dE) / ∫ μ_avg dE`` with μ_avg the mean of the three
    spectra; integrals use the trapezoid rule on FEFF's (possibly non-uniform) grid.

    Args:
        energies: Energy grid, shape (E,), eV, increasing.
        mu: Polarized spectra, shape (3, E), any common intensity unit.

    Returns:
        The symmetric, zero-diagonal 3×3 SAM (dimensionless).

    Raises:
        ValueError: If the shapes disagree or the isotropic spectrum integrates to ≤ 0.
    """
    energies = np.asarray(energies, dtype=float)
    mu = np.asarray(mu, dtype=float)
    if mu.shape != (3, energies.size):
        raise ValueError(f"mu must have shape (3, {energies.size}), got {mu.shape}")
    isotropic_area = np.trapezoid(mu.mean(axis=0), energies)
    if not isotropic_area > 0:
        raise ValueError(f"the isotropic spectrum integrates to {isotropic_area:.3g}, not > 0")
    sam = np.zeros((3, 3))
    for i, j in combinations(range(3), 2):
        difference_norm = np.sqrt(np.trapezoid((mu[i] - mu[j]) ** 2, energies))
        sam[i, j] = sam[j, i] = difference_norm / isotropic_area
    return sam


def sams(energies: np.ndarray, mu: np.ndarray) -> float:
    """Spectral anisotropy matrix sum SAM_12 + SAM_13 + SAM_23 (dimensionless)."""
    return float(np.triu(sam_matrix(energies, mu), k=1).sum())


def common_grid(
    spectra: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Bring spectra computed on different energy grids onto one grid.

    The common grid is the first spectrum's grid restricted to the energy range that all
    spectra cover; the others are linearly interpolated onto it.

    Args:
        spectra: ``(energies (E_k,), mu (..., E_k))`` pairs; ``mu`` may stack several spectra.

    Returns:
        The common grid and each ``mu`` interpolated onto it (leading axes preserved).

    Raises:
        ValueError: If the energy ranges do not overlap.
    """
    low = max(float(np.min(e)) for e, _ in spectra)
    high = min(float(np.max(e)) for e, _ in spectra)
    reference = np.asarray(spectra[0][0], dtype=float)
    grid = reference[(reference >= low) & (reference <= high)]
    if grid.size < 2:
        raise ValueError(f"the spectra's energy ranges do not overlap ({low:.2f} > {high:.2f} eV)")
    resampled = []
    for energies, mu in spectra:
        mu = np.asarray(mu, dtype=float)
        flat = mu.reshape(-1, mu.shape[-1])
        rows = [np.interp(grid, energies, row) for row in flat]
        resampled.append(np.array(rows).reshape(*mu.shape[:-1], grid.size))
    return grid, resampled


def sigma_from_polarizations(mu6: np.ndarray) -> np.ndarray:
    """Dipole tensor σ(E) from spectra along the six :data:`SIX_POLARIZATIONS`.

    With μ_d the spectrum along (e_i + e_j)/√2: σ_ij = μ_d − (σ_ii + σ_jj)/2.

    Args:
        mu6: Spectra, shape (6, E), in the order of :data:`SIX_POLARIZATIONS`.

    Returns:
        σ with shape (E, 3, 3), symmetric at every energy.
    """
    mu6 = np.asarray(mu6, dtype=float)
    if mu6.shape[0] != 6:
        raise ValueError(f"need six polarized spectra, got {mu6.shape[0]}")
    sigma = np.zeros((mu6.shape[1], 3, 3))
    for axis in range(3):
        sigma[:, axis, axis] = mu6[axis]
    for row, (i, j) in zip(range(3, 6), ((0, 1), (0, 2), (1, 2)), strict=True):
        off_diagonal = mu6[row] - 0.5 * (mu6[i] + mu6[j])
        sigma[:, i, j] = sigma[:, j, i] = off_diagonal
    return sigma


SIGMA_COMPONENTS: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
"""Order of σ's six independent components as stored: xx, yy, zz, xy, xz, yz."""


def sigma_components(sigma: np.ndarray) -> np.ndarray:
    """The six independent components of a symmetric σ(E): shape (6, E), in ``SIGMA_COMPONENTS``."""
    sigma = np.asarray(sigma, dtype=float)
    return np.array([sigma[:, i, j] for i, j in SIGMA_COMPONENTS])


def sigma_from_components(components: Sequence | np.ndarray) -> np.ndarray:
    """Inverse of :func:`sigma_components`: σ with shape (E, 3, 3)."""
    components = np.asarray(components, dtype=float)
    if components.ndim != 2 or components.shape[0] != 6:
        raise ValueError(f"σ needs six component rows, got shape {components.shape}")
    sigma = np.zeros((components.shape[1], 3, 3))
    for row, (i, j) in zip(components, SIGMA_COMPONENTS, strict=True):
        sigma[:, i, j] = sigma[:, j, i] = row
    return sigma


def rotate_sigma(sigma: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """σ of a site whose environment is the original rotated by ``rotation``: R σ Rᵀ."""
    return np.einsum("ij,ejk,lk->eil", rotation, sigma, rotation)


def mu_along(sigma: np.ndarray, polarization: np.ndarray) -> np.ndarray:
    """Spectrum for a linear polarization: eᵀ σ(E) e with e normalised; shape (E,)."""
    e = np.asarray(polarization, dtype=float)
    e = e / np.linalg.norm(e)
    return np.einsum("i,eij,j->e", e, sigma, e)


def axis_spectra(sigma: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Spectra along the three columns of ``basis``; shape (3, E)."""
    return np.array([mu_along(sigma, basis[:, axis]) for axis in range(3)])
