"""Spectral anisotropy: the SAM/SAMS of polarized spectra and the dipole σ-tensor algebra.

In the dipole approximation the emission of one site for a linear polarization ``e`` is
``μ(e) = eᵀ σ(E) e`` with σ a real symmetric 3×3 tensor at every energy. Six polarizations
fix σ; the symmetry operations of the crystal then give every equivalent site's σ as
``R σ Rᵀ`` without running FEFF again.

From the crystal's σ(E) the anisotropy of any orientation follows without FEFF: the SAMS of
any basis (:func:`sams_in_basis`), its maximum over all rotations (:func:`sams_max`), the
rotation-invariant anisotropy (:func:`anisotropy_invariant`), the most different pair of
orthogonal polarizations (:func:`best_pair`), and those axes as lattice directions [uvw]
(:func:`lattice_directions`).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations, product
from math import gcd
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

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


# ---------------------------------------------------------------------------------------------
# Orientations from σ(E): SAMS of any basis, its maximum, the invariant, the best pair


@dataclass(frozen=True)
class OrientationResult:
    """An optimized set of orthogonal polarization axes.

    Attributes:
        value: The maximized quantity (dimensionless): SAMS for :func:`sams_max`, the pair's
            SAM for :func:`best_pair`.
        axes: Unit polarization axes as columns, Cartesian frame, shape (3, k); k = 3 (a
            right-handed basis) for :func:`sams_max`, k = 2 for :func:`best_pair`. Ordered by
            ascending ∫μ dE; each axis's sign puts its largest Cartesian component positive
            (μ(e) = μ(−e), so an axis is a line), the third of a basis then made right-handed.
    """

    value: float
    axes: np.ndarray


@dataclass(frozen=True)
class LatticeDirection:
    """The low-index lattice direction [uvw] nearest to a polarization axis.

    Attributes:
        uvw: Integer indices, first non-zero one positive (a direction and its opposite
            are the same polarization).
        angle_deg: Angle between the axis and [uvw], degrees, in [0, 90].
    """

    uvw: tuple[int, int, int]
    angle_deg: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form ``{"uvw": [u, v, w], "angle_deg": angle}``."""
        return {"uvw": list(self.uvw), "angle_deg": self.angle_deg}


def sam_in_basis(energies: np.ndarray, sigma: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """SAM of the spectra along the columns of an orthonormal ``basis`` (3×3, dimensionless).

    Args:
        energies: Energy grid, eV, shape (E,).
        sigma: Dipole tensor σ(E), shape (E, 3, 3), in the frame of ``basis``.
        basis: Orthonormal axes as columns, shape (3, 3).
    """
    return sam_matrix(energies, axis_spectra(sigma, np.asarray(basis, dtype=float)))


def sams_in_basis(energies: np.ndarray, sigma: np.ndarray, basis: np.ndarray) -> float:
    """SAMS of the spectra along the columns of an orthonormal ``basis`` (dimensionless).

    With the record's basis V and the engine's σ this is the engine's ``sams``.
    """
    return float(np.triu(sam_in_basis(energies, sigma, basis), k=1).sum())


def anisotropy_invariant(energies: np.ndarray, sigma: np.ndarray) -> float:
    """Rotation-invariant anisotropy A_inv of σ(E) (dimensionless).

    ``A_inv = sqrt(∫‖s(E)‖²_F dE) / ∫ tr σ(E)/3 dE`` with ``s = σ − (tr σ/3)·1`` the
    anisotropic (traceless) part; trapezoid rule, like :func:`sam_matrix`. It is zero exactly
    when μ(e) does not depend on e at any energy. For any orthonormal basis
    ``Σ_{i<j} SAM_ij² ≤ 3 A_inv²`` (equal where the basis diagonalizes σ at every energy), so
    ``SAMS ≤ SAMS_max ≤ 3 A_inv``.

    Args:
        energies: Energy grid, eV, shape (E,).
        sigma: Dipole tensor σ(E), shape (E, 3, 3), any frame.

    Raises:
        ValueError: If the orientation-averaged spectrum integrates to ≤ 0.
    """
    weights, anisotropic, area = _anisotropic_part(energies, sigma)
    return float(np.sqrt(weights @ np.einsum("eij,eij->e", anisotropic, anisotropic)) / area)


def sams_max(
    energies: np.ndarray, sigma: np.ndarray, basis: np.ndarray | None = None
) -> OrientationResult:
    """The largest SAMS over all orthonormal bases (rotations in SO(3)) and its basis.

    ``∫μ_avg dE = ∫tr σ/3 dE`` does not depend on the basis, so only the numerators turn.
    Nelder–Mead on a rotation vector from deterministic starts: ``basis``, the Cartesian axes,
    the eigenbases of ∫s dE, ∫s² dE and of s at the energy of its largest norm, and twelve
    fixed random rotations; the best is polished once more. The result is never below the
    SAMS of ``basis``.

    Args:
        energies: Energy grid, eV, shape (E,).
        sigma: Dipole tensor σ(E), shape (E, 3, 3), Cartesian frame.
        basis: A basis to start from and never fall below (e.g. the record's V), columns.

    Returns:
        SAMS_max and its basis (see :class:`OrientationResult`).
    """
    weights, anisotropic, area = _anisotropic_part(energies, sigma)
    gram = _gram(weights, anisotropic)

    def objective(rotation: np.ndarray) -> float:
        return _pair_norms(gram, rotation).sum() / area

    starts = _starts(weights, anisotropic, basis)
    best = _maximize_over_rotations(objective, starts)
    if basis is not None and objective(best) < objective(np.asarray(basis, dtype=float)):
        best = np.asarray(basis, dtype=float)
    axes = _canonical_axes(weights, sigma, best, right_handed=True)
    return OrientationResult(sams_in_basis(energies, sigma, axes), axes)


def best_pair(energies: np.ndarray, sigma: np.ndarray) -> OrientationResult:
    """The two orthogonal polarizations ε₁ ⟂ ε₂ whose spectra differ most.

    Maximizes ``sqrt(∫(μ(ε₁) − μ(ε₂))² dE) / ∫μ_avg dE`` (μ_avg = tr σ/3, the orientation
    average): the largest SAM element any basis can show, the contrast of the best
    two-polarization measurement. Same optimizer and starts as :func:`sams_max`.

    Args:
        energies: Energy grid, eV, shape (E,).
        sigma: Dipole tensor σ(E), shape (E, 3, 3), Cartesian frame.

    Returns:
        The pair's SAM and the two unit polarizations as columns, shape (3, 2).
    """
    weights, anisotropic, area = _anisotropic_part(energies, sigma)
    gram = _gram(weights, anisotropic)

    def objective(rotation: np.ndarray) -> float:
        return _pair_norms(gram, rotation[:, :2])[0] / area

    best = _maximize_over_rotations(objective, _starts(weights, anisotropic, None))
    axes = _canonical_axes(weights, sigma, best[:, :2], right_handed=False)
    return OrientationResult(float(sam_in_basis(energies, sigma, _complete(axes))[0, 1]), axes)


def lattice_vector(uvw: Sequence[float] | np.ndarray, lattice: Any) -> np.ndarray:
    """Cartesian unit vector along the lattice direction [uvw] (u a + v b + w c).

    Args:
        uvw: Indices (integers or not), a sequence or an array of shape (3,).
        lattice: A pymatgen ``Lattice`` or its 3×3 matrix (rows a, b, c; Å).

    Raises:
        ValueError: If [uvw] is the zero vector.
    """
    vector = np.asarray(uvw, dtype=float) @ _lattice_matrix(lattice)
    norm = np.linalg.norm(vector)
    if not norm > 0:
        raise ValueError(f"[uvw] = {list(uvw)} has zero length")
    return vector / norm


def nearest_lattice_direction(
    vector: np.ndarray, lattice: Any, max_index: int = 3
) -> LatticeDirection:
    """The lattice direction [uvw] (|u|, |v|, |w| ≤ ``max_index``) closest to an axis.

    An axis is a line (±vector); among directions at the same angle (within 1e-9°) the one
    with the smallest |u| + |v| + |w| wins.

    Args:
        vector: Cartesian axis, shape (3,), any length > 0.
        lattice: A pymatgen ``Lattice`` or its 3×3 matrix (rows a, b, c; Å).
        max_index: Largest |index| considered.
    """
    candidates = _index_triples(max_index)
    directions = candidates @ _lattice_matrix(lattice)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    unit = np.asarray(vector, dtype=float) / np.linalg.norm(vector)
    angles = np.degrees(np.arccos(np.clip(np.abs(directions @ unit), 0.0, 1.0)))
    order = np.lexsort((np.abs(candidates).sum(axis=1), np.round(angles, 9)))
    best = order[0]
    u, v, w = (int(i) for i in candidates[best])
    return LatticeDirection((u, v, w), float(angles[best]))


def lattice_directions(
    axes: np.ndarray, lattice: Any, max_index: int = 3
) -> list[LatticeDirection]:
    """:func:`nearest_lattice_direction` of each column of ``axes`` (shape (3, k))."""
    axes = np.asarray(axes, dtype=float)
    return [nearest_lattice_direction(axes[:, k], lattice, max_index) for k in range(axes.shape[1])]


def orientation_summary(
    energies: np.ndarray,
    sigma: np.ndarray,
    basis: np.ndarray | None = None,
    lattice: Any = None,
    max_index: int = 3,
) -> dict[str, Any]:
    """SAMS_max, its basis, A_inv and the best pair of σ(E), JSON-able.

    Args:
        energies: Energy grid, eV, shape (E,).
        sigma: Dipole tensor σ(E), shape (E, 3, 3), Cartesian frame.
        basis: The record's basis V (columns), the start SAMS_max never falls below.
        lattice: The structure's lattice (pymatgen ``Lattice`` or rows a, b, c) for the
            [uvw] of the axes; None leaves them out (``null``).
        max_index: Largest |index| of the [uvw] considered.

    Returns:
        ``SAMS_max``; ``basis_max`` (3×3, columns = axes, like a task's ``basis``);
        ``axes_max_uvw`` (per axis ``{"uvw", "angle_deg"}``); ``A_inv``; ``best_pair``
        (``value``, ``directions``: the two unit vectors, ``uvw``).
    """
    maximum = sams_max(energies, sigma, basis)
    pair = best_pair(energies, sigma)

    def in_lattice(axes: np.ndarray) -> list[dict[str, Any]] | None:
        if lattice is None:
            return None
        return [direction.as_dict() for direction in lattice_directions(axes, lattice, max_index)]

    return {
        "SAMS_max": maximum.value,
        "basis_max": maximum.axes.tolist(),
        "axes_max_uvw": in_lattice(maximum.axes),
        "A_inv": anisotropy_invariant(energies, sigma),
        "best_pair": {
            "value": pair.value,
            "directions": pair.axes.T.tolist(),
            "uvw": in_lattice(pair.axes),
        },
    }


def _anisotropic_part(
    energies: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Trapezoid weights (∫f dE = w·f), s = σ − tr σ/3 · 1 and ∫ tr σ/3 dE."""
    energies = np.asarray(energies, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    if sigma.shape != (energies.size, 3, 3):
        raise ValueError(f"sigma must have shape ({energies.size}, 3, 3), got {sigma.shape}")
    steps = np.diff(energies)
    weights = np.zeros(energies.size)
    weights[:-1] += steps / 2
    weights[1:] += steps / 2
    isotropic = np.trace(sigma, axis1=1, axis2=2) / 3
    area = float(weights @ isotropic)
    if not area > 0:
        raise ValueError(f"the isotropic spectrum integrates to {area:.3g}, not > 0")
    return weights, sigma - isotropic[:, None, None] * np.eye(3), area


def _gram(weights: np.ndarray, anisotropic: np.ndarray) -> np.ndarray:
    """G = ∫ vec s(E) vec s(E)ᵀ dE (9 × 9, trapezoid weights).

    μ_i − μ_j = ⟨r_i r_iᵀ − r_j r_jᵀ, s(E)⟩, so ∫(μ_i − μ_j)² dE = dᵀ G d with
    d = vec(r_i r_iᵀ − r_j r_jᵀ): the orientation search evaluates a 9 × 9 form per basis
    instead of integrating over the energy grid.
    """
    flat = anisotropic.reshape(len(weights), 9)
    return flat.T @ (weights[:, None] * flat)


def _pair_norms(gram: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """sqrt(∫(μ_i − μ_j)² dE) for every pair i < j of the columns of ``axes`` (:func:`_gram`)."""
    projectors = np.einsum("ai,bi->iab", axes, axes).reshape(axes.shape[1], 9)
    pairs = list(combinations(range(axes.shape[1]), 2))
    differences = np.array([projectors[i] - projectors[j] for i, j in pairs])
    squares = np.einsum("pa,ab,pb->p", differences, gram, differences)
    return np.sqrt(np.clip(squares, 0.0, None))


def _starts(
    weights: np.ndarray, anisotropic: np.ndarray, basis: np.ndarray | None
) -> list[np.ndarray]:
    """Deterministic starting bases: given, Cartesian, eigenbases of σ's anisotropy, fixed draws."""
    peak = int(np.argmax(np.einsum("eij,eij->e", anisotropic, anisotropic)))
    tensors = (
        np.einsum("e,eij->ij", weights, anisotropic),
        np.einsum("e,eij,ejk->ik", weights, anisotropic, anisotropic),
        anisotropic[peak],
    )
    starts = [] if basis is None else [np.asarray(basis, dtype=float)]
    starts += [np.eye(3), *(np.linalg.eigh(tensor)[1] for tensor in tensors)]
    starts += list(Rotation.random(12, random_state=0).as_matrix())
    return starts


def _maximize_over_rotations(
    objective: Callable[[np.ndarray], float], starts: Sequence[np.ndarray]
) -> np.ndarray:
    """The rotated basis R·start with the largest objective.

    Nelder–Mead from each start, then once more from the best with a smaller simplex.
    """
    climbed = [_climb(objective, start, step=0.3) for start in starts]
    best = max(climbed, key=objective)
    return _climb(objective, best, step=0.02)


def _climb(objective: Callable[[np.ndarray], float], start: np.ndarray, step: float) -> np.ndarray:
    """Nelder–Mead on the rotation vector v of R(v)·start (simplex edges ``step`` rad)."""

    def turned(vector: np.ndarray) -> np.ndarray:
        return _rotation_matrix(vector) @ start

    simplex = np.vstack([np.zeros(3), step * np.eye(3)])
    found = minimize(
        lambda vector: -objective(turned(vector)),
        np.zeros(3),
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": 1e-8, "fatol": 1e-13, "maxiter": 4000},
    )
    return turned(found.x)


def _rotation_matrix(vector: np.ndarray) -> np.ndarray:
    """R(v), the rotation by |v| rad about v (Rodrigues: I + sin θ/θ K + (1 − cos θ)/θ² K²).

    Equal to ``Rotation.from_rotvec(v).as_matrix()`` to rounding, at a tenth of its overhead
    (the search calls it for every simplex point); series terms below θ = 1e-4.
    """
    x, y, z = vector
    cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    theta2 = float(x * x + y * y + z * z)
    if theta2 < 1e-8:
        first, second = 1.0 - theta2 / 6.0, 0.5 - theta2 / 24.0
    else:
        theta = np.sqrt(theta2)
        first, second = np.sin(theta) / theta, (1.0 - np.cos(theta)) / theta2
    return np.eye(3) + first * cross + second * (cross @ cross)


def _canonical_axes(
    weights: np.ndarray, sigma: np.ndarray, axes: np.ndarray, right_handed: bool
) -> np.ndarray:
    """Columns ordered by ascending ∫μ dE, largest component positive; optionally det = +1."""
    areas = [weights @ mu_along(sigma, axes[:, k]) for k in range(axes.shape[1])]
    axes = axes[:, np.argsort(areas, kind="stable")]
    signs = np.sign(axes[np.argmax(np.abs(axes), axis=0), range(axes.shape[1])])
    axes = axes * signs
    if right_handed and np.linalg.det(axes) < 0:
        axes[:, 2] *= -1
    return axes


def _complete(axes: np.ndarray) -> np.ndarray:
    """Two orthonormal columns completed to a basis by their cross product."""
    return np.column_stack([axes, np.cross(axes[:, 0], axes[:, 1])])


def _index_triples(max_index: int) -> np.ndarray:
    """Every [uvw] with |indices| ≤ max_index, coprime, first non-zero index positive."""
    span = range(-max_index, max_index + 1)
    triples = [
        t
        for t in product(span, repeat=3)
        if any(t) and gcd(*t) == 1 and next(i for i in t if i) > 0
    ]
    return np.array(triples)


def _lattice_matrix(lattice: Any) -> np.ndarray:
    matrix = np.asarray(getattr(lattice, "matrix", lattice), dtype=float)
    if matrix.shape != (3, 3):
        raise ValueError(f"a lattice needs a 3×3 matrix, got shape {matrix.shape}")
    return matrix
