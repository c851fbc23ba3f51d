"""SAM/SAMS and σ-tensor algebra: exact identities of the definitions.

The spectra here are analytic test functions (Gaussians), not FEFF results: these tests check
the mathematics that later turns real FEFF spectra into SAMS.
"""

import numpy as np
import pytest

from vtc_fw.science.anisotropy import (
    SIX_POLARIZATIONS,
    axis_spectra,
    common_grid,
    mu_along,
    rotate_sigma,
    sam_matrix,
    sams,
    sigma_from_polarizations,
)

ENERGIES = np.linspace(-25.0, 5.0, 151)


def peak(center: float, width: float = 2.0, height: float = 1.0) -> np.ndarray:
    return height * np.exp(-0.5 * ((ENERGIES - center) / width) ** 2)


def random_sigma(rng: np.random.Generator) -> np.ndarray:
    """A positive symmetric σ(E): a sum of peaks with random orientation tensors."""
    sigma = np.zeros((ENERGIES.size, 3, 3))
    for center in (-15.0, -8.0, -2.0):
        a = rng.normal(size=(3, 3))
        sigma += peak(center)[:, None, None] * (a @ a.T)[None]
    return sigma


def test_identical_spectra_have_zero_sams():
    mu = np.tile(peak(-10.0), (3, 1))
    assert sams(ENERGIES, mu) == 0.0
    assert np.all(sam_matrix(ENERGIES, mu) == 0.0)


def test_sam_is_symmetric_and_permuting_axes_keeps_sams():
    mu = np.array([peak(-10.0), peak(-9.0, height=1.2), peak(-11.0, width=3.0)])
    sam = sam_matrix(ENERGIES, mu)
    assert np.allclose(sam, sam.T) and np.all(np.diag(sam) == 0)
    for order in ([1, 0, 2], [2, 1, 0], [1, 2, 0]):
        assert sams(ENERGIES, mu[order]) == pytest.approx(sams(ENERGIES, mu))


def test_sams_is_independent_of_intensity_scale():
    mu = np.array([peak(-10.0), peak(-9.0), peak(-8.0)])
    assert sams(ENERGIES, 7.5 * mu) == pytest.approx(sams(ENERGIES, mu))


def test_sam_matches_the_definition_for_a_known_pair():
    mu = np.array([peak(-10.0), peak(-10.0), 2.0 * peak(-10.0)])
    # ∫(μ1-μ3)² = ∫g², ∫μ_avg = (4/3)∫g  →  SAM_13 = sqrt(∫g²) / ((4/3)∫g)
    g = peak(-10.0)
    expected = np.sqrt(np.trapezoid(g**2, ENERGIES)) / (4.0 / 3.0 * np.trapezoid(g, ENERGIES))
    assert sam_matrix(ENERGIES, mu)[0, 2] == pytest.approx(expected)
    assert sam_matrix(ENERGIES, mu)[0, 1] == 0.0


def test_empty_spectrum_is_an_error():
    with pytest.raises(ValueError, match="integrates"):
        sams(ENERGIES, np.zeros((3, ENERGIES.size)))


def test_sigma_from_six_polarizations_reproduces_every_direction():
    rng = np.random.default_rng(1)
    sigma = random_sigma(rng)
    mu6 = np.array([mu_along(sigma, e) for e in SIX_POLARIZATIONS])
    rebuilt = sigma_from_polarizations(mu6)
    assert np.allclose(rebuilt, sigma)
    for _ in range(5):
        e = rng.normal(size=3)
        assert np.allclose(mu_along(rebuilt, e), mu_along(sigma, e))


def test_axis_spectra_of_sigma_match_the_axis_polarizations():
    rng = np.random.default_rng(2)
    sigma = random_sigma(rng)
    basis = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    mu3 = axis_spectra(sigma, basis)
    for axis in range(3):
        assert np.allclose(
            mu3[axis], np.einsum("i,eij,j->e", basis[:, axis], sigma, basis[:, axis])
        )


def test_rotated_sigma_gives_rotated_polarization_response():
    rng = np.random.default_rng(3)
    sigma = random_sigma(rng)
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    e = rng.normal(size=3)
    # a site rotated by R answers to e as the original answers to Rᵀe
    assert np.allclose(mu_along(rotate_sigma(sigma, rotation), e), mu_along(sigma, rotation.T @ e))


def test_common_grid_interpolates_onto_the_overlap():
    fine = np.linspace(-30.0, 10.0, 401)
    coarse = np.linspace(-25.0, 5.0, 61)
    mu_fine = np.exp(-0.5 * ((fine + 10) / 2) ** 2)
    mu_coarse = np.tile(np.exp(-0.5 * ((coarse + 10) / 2) ** 2), (3, 1))
    grid, (a, b) = common_grid([(fine, mu_fine), (coarse, mu_coarse)])
    assert grid.min() >= -25.0 and grid.max() <= 5.0
    assert a.shape == grid.shape and b.shape == (3, grid.size)
    # linear interpolation of a 2 eV-wide peak sampled every 0.5 eV: error ≤ h²·max|f″|/8 ≈ 0.008
    assert np.allclose(b[0], np.exp(-0.5 * ((grid + 10) / 2) ** 2), atol=1e-2)


def test_disjoint_grids_are_an_error():
    with pytest.raises(ValueError, match="overlap"):
        common_grid([(np.linspace(0, 1, 5), np.ones(5)), (np.linspace(2, 3, 5), np.ones(5))])
