"""The FEFF10 engine on real FEFF runs (preset "smoke": first coordination shell, no SCF, coarse
grid, a few seconds per site).

The smoke preset's SAMS is not the science value, but every property checked here (symmetry,
invariance, agreement of the routes, the dipole form of the response, the failure ladder) must
hold for any preset.
"""

import dataclasses
import os

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vtc_fw.app.distortion import cr2o3_structure, nio_structure
from vtc_fw.feff import FeffRunError, RecordSpectra, compute_record_spectra
from vtc_fw.feff.engine import Budget, run_site, site_input
from vtc_fw.feff.ladder import LADDER
from vtc_fw.science.anisotropy import (
    SIX_POLARIZATIONS,
    common_grid,
    mu_along,
    sigma_from_polarizations,
)
from vtc_fw.science.records import AbsorberSite, make_records

pytestmark = pytest.mark.slow


def _script(directory, body: str) -> str:
    """An executable script standing in for an external FEFF (commands run without a shell)."""
    path = directory / f"fake_feff_{abs(hash(body))}.sh"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_an_external_command_runs_without_a_shell(cr2o3, tmp_path):
    marker = tmp_path / "injected"
    with pytest.raises(FeffRunError) as failure:
        compute_record_spectra(cr2o3, "smoke", tmp_path / "w", feff_cmd=f"true; touch {marker}")
    assert not marker.exists()  # "true;" is not a program: nothing ran
    assert {a.reason for a in failure.value.attempts} == {"feff_not_found"}


def _record(structure, name, element):
    return make_records(structure, structure_id=name, elements=[element])[0]


@pytest.fixture(scope="module")
def cr2o3():
    return _record(cr2o3_structure(0.0), "cr2o3", "Cr")


@pytest.fixture(scope="module")
def cr2o3_sigma(cr2o3, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cr2o3") / "sigma"
    return compute_record_spectra(cr2o3, "smoke", workdir, route="sigma")


def test_cubic_nio_is_isotropic(tmp_path):
    spectra = compute_record_spectra(
        _record(nio_structure(0.0), "nio", "Ni"), "smoke", tmp_path / "w"
    )
    assert spectra.route == "sigma"
    assert spectra.sams < 1e-3
    assert spectra.mu.shape == (3, spectra.energies.size)
    assert spectra.cpu_s > 0 and spectra.stages["fms"] > 0
    assert spectra.archive.endswith(".tar.gz") and not (tmp_path / "w").exists()


def test_rotating_the_structure_leaves_sams_unchanged(tmp_path):
    structure = nio_structure(5.0)
    turned = structure.copy()
    rotation = Rotation.from_euler("zyx", [27, 41, -13], degrees=True).as_matrix()
    turned.lattice = type(structure.lattice)(structure.lattice.matrix @ rotation.T)
    plain = compute_record_spectra(_record(structure, "a", "Ni"), "smoke", tmp_path / "a")
    rotated = compute_record_spectra(_record(turned, "b", "Ni"), "smoke", tmp_path / "b")
    assert plain.sams > 0.01  # the stretch is seen
    assert abs(plain.sams - rotated.sams) < 1e-3
    # tetragonal: the two in-plane axes are equivalent, the anisotropy is all along c
    assert plain.sam[0, 1] < 1e-3 * plain.sams


def test_sigma_route_equals_axes_route_and_every_site(cr2o3, cr2o3_sigma, tmp_path):
    assert cr2o3.absorber_sites[0].multiplicity == 4
    axes = compute_record_spectra(cr2o3, "smoke", tmp_path / "axes", route="axes")
    every_site = dataclasses.replace(
        cr2o3,
        absorber_sites=[
            AbsorberSite(i, (i,), (np.eye(3),)) for i in cr2o3.absorber_sites[0].equivalent_indices
        ],
    )
    brute = compute_record_spectra(every_site, "smoke", tmp_path / "all", route="axes")
    scale = cr2o3_sigma.mu.max()
    assert np.abs(axes.mu - cr2o3_sigma.mu).max() < 1e-4 * scale
    # each site's own FEFF run has its own edge energy, hence grid: compare on a common one
    _, (mu_brute, mu_sigma) = common_grid(
        [(brute.energies, brute.mu), (cr2o3_sigma.energies, cr2o3_sigma.mu)]
    )
    assert np.abs(mu_brute - mu_sigma).max() < 1e-3 * scale
    assert abs(brute.sams - cr2o3_sigma.sams) < 1e-3


def test_crystal_sigma_is_cartesian_and_gives_the_basis_spectra(cr2o3, cr2o3_sigma):
    sigma = cr2o3_sigma.sigma
    assert sigma.shape == (cr2o3_sigma.energies.size, 3, 3)
    assert np.allclose(sigma, np.swapaxes(sigma, 1, 2))
    along_axes = np.array([mu_along(sigma, cr2o3.basis[:, k]) for k in range(3)])
    assert np.abs(along_axes - cr2o3_sigma.mu).max() < 1e-9 * cr2o3_sigma.mu.max()


def test_trigonal_cr2o3_in_plane_axes_are_equivalent(cr2o3_sigma):
    sam = cr2o3_sigma.sam
    assert sam[0, 1] < 1e-3 * cr2o3_sigma.sams
    assert cr2o3_sigma.sams > 0.01


def test_feff_response_is_a_dipole_tensor(cr2o3, tmp_path):
    """μ along a seventh direction equals eᵀσe with σ from the six polarizations."""
    diagonal = np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5])
    directions = np.vstack([SIX_POLARIZATIONS, diagonal])
    inputs = site_input(cr2o3, 0, "smoke")
    mu = run_site(inputs, 0, directions, tmp_path, Budget(None)).mu
    predicted = mu_along(sigma_from_polarizations(mu[:6]), diagonal)
    assert np.abs(predicted - mu[6]).max() < 1e-3 * mu.max()


def test_failed_feff_climbs_the_ladder_and_records_every_attempt(cr2o3, tmp_path):
    with pytest.raises(FeffRunError) as failure:
        compute_record_spectra(cr2o3, "paper", tmp_path / "w", feff_cmd=_script(tmp_path, "exit 3"))
    attempts = failure.value.attempts
    assert [a.rung for a in attempts] == [rung.name for rung in LADDER]
    assert all(not a.ok and a.reason == "nonzero_exit" for a in attempts)
    assert attempts[-1].scf is None
    assert failure.value.as_dict()["reason"] == "feff_ladder_exhausted"


def test_feff_writing_no_spectrum_is_detected(cr2o3, tmp_path):
    with pytest.raises(FeffRunError) as failure:
        compute_record_spectra(cr2o3, "smoke", tmp_path / "w", feff_cmd="true")
    assert [a.reason for a in failure.value.attempts] == ["missing_xmu"]


def test_timeout_stops_the_record(cr2o3, tmp_path):
    with pytest.raises(FeffRunError) as failure:
        compute_record_spectra(cr2o3, "paper", tmp_path / "w", timeout_s=1.0)
    assert failure.value.reason == "timeout"
    assert len(failure.value.attempts) == 1


def test_record_spectra_round_trip_as_json(cr2o3_sigma):
    import json

    again = RecordSpectra.from_dict(json.loads(json.dumps(cr2o3_sigma.as_dict())))
    assert again.sams == cr2o3_sigma.sams
    assert np.array_equal(again.mu, cr2o3_sigma.mu)
    assert np.allclose(again.sigma, cr2o3_sigma.sigma, rtol=0, atol=1e-12 * cr2o3_sigma.mu.max())


def test_feff_processes_get_the_malloc_pad_and_the_users_tunables_win(tmp_path, monkeypatch):
    from vtc_fw.feff.run import MALLOC_TUNABLES, SCF_STAGES, run_stages

    inputs = site_input(_record(nio_structure(0.0), "nio", "Ni"), 0, "smoke")
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    dump_env = _script(tmp_path, "env > env.txt")
    run_stages(inputs, tmp_path / "a", SCF_STAGES, feff_cmd=dump_env)
    assert f"GLIBC_TUNABLES={MALLOC_TUNABLES}\n" in (tmp_path / "a" / "env.txt").read_text()
    user = "glibc.malloc.top_pad=0:glibc.malloc.arena_max=2"
    monkeypatch.setenv("GLIBC_TUNABLES", user)
    run_stages(inputs, tmp_path / "b", SCF_STAGES, feff_cmd=dump_env)
    assert f"GLIBC_TUNABLES={user}\n" in (tmp_path / "b" / "env.txt").read_text()
    run_stages(inputs, tmp_path / "c", SCF_STAGES, feff_cmd=dump_env, malloc_tunables="")
    assert f"GLIBC_TUNABLES={user}\n" in (tmp_path / "c" / "env.txt").read_text()
    assert os.environ["GLIBC_TUNABLES"] == user


def test_one_green_function_serves_every_polarization(cr2o3, tmp_path):
    """Polarizations reusing the site's unpolarized FMS give FEFF's own per-polarization spectra.

    Compares bytes of ``xmu.dat`` with runs that recompute xsph and fms for their polarization.
    """
    from vtc_fw.feff.run import FMS_STAGES, POLARIZATION_STAGES, SCF_STAGES, copy_scf, run_stages

    inputs = site_input(cr2o3, 0, "smoke")
    run_stages(inputs, tmp_path / "scf", SCF_STAGES)
    run_stages(inputs, copy_scf(tmp_path / "scf", tmp_path / "site"), FMS_STAGES)
    oblique = np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5])
    for k, direction in enumerate([np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0]), oblique]):
        polarized = inputs.with_polarization(direction)
        shared = copy_scf(tmp_path / "site", tmp_path / f"shared{k}")
        run_stages(polarized, shared, POLARIZATION_STAGES)
        own = copy_scf(tmp_path / "scf", tmp_path / f"own{k}")
        run_stages(polarized, own, ("rdinp", "xsph", "fms", *POLARIZATION_STAGES[2:]))
        assert (shared / "xmu.dat").read_bytes() == (own / "xmu.dat").read_bytes()
    assert (own / "xmu.dat").read_bytes() != (tmp_path / "shared0" / "xmu.dat").read_bytes()
