"""Moment tensors: the fast per-exponent diagonal sums equal the full tensors rotated."""

import numpy as np
import pytest

from vtc_fw.science.tensors import (
    anisotropy_sum,
    dipole_tensor,
    inertia_tensor,
    normalized_diagonals_by_exponent,
    pair_sum,
    principal_basis,
    quadrupole_tensor,
)


def anisotropy_sums_by_exponent(coords, charges, basis, exponents):
    """QAMS, DAMS, IAMS of one site: the pair sums of its normalized diagonals."""
    diagonals = normalized_diagonals_by_exponent(coords, charges, basis, exponents)
    return {name: pair_sum(values) for name, values in diagonals.items()}


@pytest.fixture
def distorted_site():
    """An octahedron of −2 anions with random displacements, plus a +3 second shell."""
    rng = np.random.default_rng(5)
    octahedron = np.vstack([np.eye(3), -np.eye(3)]) * 2.0
    second = rng.normal(size=(12, 3))
    second = 3.5 * second / np.linalg.norm(second, axis=1)[:, None]
    coords = np.vstack([octahedron, second]) + rng.normal(scale=0.08, size=(18, 3))
    charges = np.array([-2.0] * 6 + [3.0] * 12)
    return coords, charges, np.linalg.qr(rng.normal(size=(3, 3)))[0]


def test_diagonal_sums_equal_full_tensor_sums(distorted_site):
    coords, charges, basis = distorted_site
    exponents = np.arange(1, 15)
    fast = anisotropy_sums_by_exponent(coords, charges, basis, exponents)
    for k, n in enumerate(exponents):
        for name, moment in (("QAMS", quadrupole_tensor), ("DAMS", dipole_tensor)):
            tensor, magnitude = moment(coords, charges, n)
            assert fast[name][k] == pytest.approx(
                anisotropy_sum(basis.T @ tensor @ basis, magnitude)
            )
        tensor, magnitude = inertia_tensor(coords, n)
        assert fast["IAMS"][k] == pytest.approx(anisotropy_sum(basis.T @ tensor @ basis, magnitude))


def test_sums_without_charges_are_nan_not_zero(distorted_site):
    coords, _, basis = distorted_site
    fast = anisotropy_sums_by_exponent(coords, None, basis, np.array([3, 5]))
    assert np.all(np.isnan(fast["QAMS"])) and np.all(np.isnan(fast["DAMS"]))
    assert np.all(fast["IAMS"] > 0)


def test_ideal_octahedron_is_isotropic_in_any_basis():
    coords = np.vstack([np.eye(3), -np.eye(3)]) * 2.1
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    fast = anisotropy_sums_by_exponent(coords, np.full(6, -2.0), basis, np.array([5]))
    assert fast["QAMS"][0] == pytest.approx(0.0, abs=1e-12)
    assert fast["IAMS"][0] == pytest.approx(0.0, abs=1e-12)


def test_principal_basis_is_right_handed_and_diagonalizes(distorted_site):
    coords, charges, _ = distorted_site
    tensor, magnitude = quadrupole_tensor(coords, charges, 5)
    basis = principal_basis(tensor, np.eye(3), magnitude)
    assert np.linalg.det(basis) == pytest.approx(1.0)
    rotated = basis.T @ tensor @ basis
    assert np.allclose(rotated, np.diag(np.diag(rotated)), atol=1e-12 * magnitude)
    assert np.all(np.diff(np.diag(rotated)) >= 0)
