"""Orientations from the crystal's σ(E): SAMS of any basis, SAMS_max, A_inv, the best pair.

The first tests use analytic σ (sums of Gaussian peaks); the rest run real FEFF10 with preset
"smoke" (first shell, no SCF, 2 eV grid) on four small records: cubic NiO, NiO stretched 3 %
along c, monoclinic NiHO2 (OQMD-ICSD 17137, Cm, one Ni in the cell) and the same NiHO2 turned
rigidly. The smoke SAMS are not science values; the properties checked hold for any preset.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pymatgen.core import Lattice
from scipy.spatial.transform import Rotation

from vtc_fw.app.distortion import nio_structure
from vtc_fw.cli import main
from vtc_fw.documents.task import TASK_COLLECTION, TaskDocument, insert_task
from vtc_fw.feff import compute_record_spectra
from vtc_fw.feff.engine import Budget, run_site, site_input
from vtc_fw.science import anisotropy
from vtc_fw.science.anisotropy import (
    anisotropy_invariant,
    best_pair,
    lattice_directions,
    lattice_vector,
    mu_along,
    nearest_lattice_direction,
    rotate_sigma,
    sam_in_basis,
    sams_in_basis,
    sams_max,
)
from vtc_fw.science.records import make_records
from vtc_fw.sources.ase_db import open_ase_db, structure_from_row
from vtc_fw.sources.oqmd import oqmd_icsd_path

ENERGIES = np.linspace(-25.0, 5.0, 61)
TURN = Rotation.from_euler("zyx", [27, 41, -13], degrees=True).as_matrix()
"""A rigid rotation of the whole crystal (lattice and atoms) for the invariance tests."""


def peak(center: float, width: float = 2.0) -> np.ndarray:
    return np.exp(-0.5 * ((ENERGIES - center) / width) ** 2)


def turning_sigma(seed: int) -> np.ndarray:
    """A positive σ(E) whose principal axes turn with energy (three differently oriented peaks)."""
    rng = np.random.default_rng(seed)
    sigma = np.zeros((ENERGIES.size, 3, 3))
    for center in (-15.0, -8.0, -2.0):
        a = rng.normal(size=(3, 3))
        sigma += peak(center)[:, None, None] * (a @ a.T)[None]
    return sigma


def fixed_axes_sigma(axes: np.ndarray) -> np.ndarray:
    """σ(E) = axes · diag(d(E)) · axesᵀ with energy-dependent eigenvalues and fixed eigenvectors."""
    eigenvalues = np.array(
        [peak(-10) + peak(-3), 1.3 * peak(-10), 0.6 * peak(-10) + 0.5 * peak(-3)]
    )
    return np.einsum("ia,ae,ja->eij", axes, eigenvalues, axes)


def random_bases(count: int) -> np.ndarray:
    return Rotation.random(count, random_state=11).as_matrix()


# ---- analytic σ ------------------------------------------------------------------------------


def test_sams_max_is_the_maximum_and_three_a_inv_bounds_it():
    sigma = turning_sigma(1)
    maximum = sams_max(ENERGIES, sigma)
    sampled = [sams_in_basis(ENERGIES, sigma, basis) for basis in random_bases(500)]
    assert max(sampled) <= maximum.value + 1e-9
    assert maximum.value == pytest.approx(sams_in_basis(ENERGIES, sigma, maximum.axes), abs=1e-12)
    assert np.allclose(maximum.axes.T @ maximum.axes, np.eye(3)) and np.linalg.det(maximum.axes) > 0
    a_inv = anisotropy_invariant(ENERGIES, sigma)
    assert maximum.value <= 3 * a_inv
    for basis in random_bases(20):  # Σ SAM_ij² ≤ 3 A_inv² for every basis
        assert (np.triu(sam_in_basis(ENERGIES, sigma, basis), 1) ** 2).sum() <= 3 * a_inv**2


def test_sams_max_never_falls_below_the_given_basis():
    sigma = turning_sigma(2)
    for basis in random_bases(5):
        found = sams_max(ENERGIES, sigma, basis)
        assert found.value >= sams_in_basis(ENERGIES, sigma, basis) - 1e-12


def test_fixed_principal_axes_give_the_maximum_and_the_invariant_exactly():
    axes = Rotation.from_rotvec([0.3, -0.7, 1.1]).as_matrix()
    sigma = fixed_axes_sigma(axes)
    in_eigenbasis = sam_in_basis(ENERGIES, sigma, axes)
    assert sams_max(ENERGIES, sigma).value == pytest.approx(np.triu(in_eigenbasis, 1).sum(), 1e-9)
    a_inv = anisotropy_invariant(ENERGIES, sigma)
    assert (np.triu(in_eigenbasis, 1) ** 2).sum() == pytest.approx(3 * a_inv**2, rel=1e-12)


def test_isotropic_sigma_has_no_anisotropy_at_all():
    sigma = (peak(-10.0) + 0.3 * peak(-2.0))[:, None, None] * np.eye(3)
    assert anisotropy_invariant(ENERGIES, sigma) < 1e-15  # zero up to rounding
    assert sams_max(ENERGIES, sigma).value < 1e-12
    assert best_pair(ENERGIES, sigma).value < 1e-12


def test_best_pair_beats_every_sam_element_and_is_orthogonal():
    sigma = turning_sigma(3)
    pair = best_pair(ENERGIES, sigma)
    assert abs(pair.axes[:, 0] @ pair.axes[:, 1]) < 1e-12
    largest = max(sam_in_basis(ENERGIES, sigma, basis).max() for basis in random_bases(500))
    assert largest <= pair.value + 1e-9
    assert pair.value <= sams_max(ENERGIES, sigma).value


def test_anisotropy_functions_are_rotation_invariant():
    sigma = turning_sigma(4)
    turned = rotate_sigma(sigma, TURN)
    assert anisotropy_invariant(ENERGIES, turned) == pytest.approx(
        anisotropy_invariant(ENERGIES, sigma), rel=1e-12
    )
    assert sams_max(ENERGIES, turned).value == pytest.approx(sams_max(ENERGIES, sigma).value, 1e-9)
    assert best_pair(ENERGIES, turned).value == pytest.approx(
        best_pair(ENERGIES, sigma).value, 1e-9
    )


def test_the_searchs_rotations_and_pair_norms_are_the_direct_ones():
    """The search's shortcuts (Rodrigues, the 9 × 9 Gram form) against scipy and ∫ dE."""
    vectors = [np.zeros(3), np.array([1e-6, -2e-6, 3e-7]), *Rotation.random(20, random_state=1)]
    for vector in (v if isinstance(v, np.ndarray) else v.as_rotvec() for v in vectors):
        expected = Rotation.from_rotvec(vector).as_matrix()
        assert np.allclose(anisotropy._rotation_matrix(vector), expected, atol=1e-14)
    sigma = turning_sigma(3)
    weights, anisotropic, _ = anisotropy._anisotropic_part(ENERGIES, sigma)
    gram = anisotropy._gram(weights, anisotropic)
    for basis in random_bases(20):
        mu = [mu_along(sigma, basis[:, k]) for k in range(3)]
        direct = [np.sqrt(weights @ (mu[i] - mu[j]) ** 2) for i, j in ((0, 1), (0, 2), (1, 2))]
        assert np.allclose(anisotropy._pair_norms(gram, basis), direct, rtol=1e-10)


def test_nearest_lattice_direction_in_an_oblique_lattice():
    lattice = Lattice.from_parameters(3.1, 4.2, 5.3, 81.0, 97.0, 113.0)
    exact = nearest_lattice_direction(-lattice_vector([1, -2, 3], lattice), lattice)
    assert exact.uvw == (1, -2, 3) and exact.angle_deg < 1e-6  # a line: sign first-positive
    assert nearest_lattice_direction(lattice.matrix[2], lattice).uvw == (0, 0, 1)
    tilted = Rotation.from_rotvec([0.0, 0.02, 0.0]).apply(lattice_vector([1, 0, 0], lattice))
    near = nearest_lattice_direction(tilted, lattice)
    assert near.uvw == (1, 0, 0) and near.angle_deg == pytest.approx(np.degrees(0.02), 1e-6)
    with pytest.raises(ValueError, match="zero length"):
        lattice_vector([0, 0, 0], lattice)


# ---- real FEFF (smoke) -----------------------------------------------------------------------


def niho2_structure():
    """Monoclinic NiHO2 (OQMD-ICSD 17137-21576, Cm): four atoms, Ni on the mirror plane."""
    database = open_ase_db(oqmd_icsd_path())
    return structure_from_row(database.get(name="17137-21576-NiHO2"))


def turned_rigidly(structure):
    turned = structure.copy()
    turned.lattice = Lattice(structure.lattice.matrix @ TURN.T)
    return turned


def computed(structure, name, element, directory):
    record = make_records(structure, structure_id=name, elements=[element])[0]
    return record, compute_record_spectra(record, "smoke", directory / name)


@pytest.fixture(scope="module")
def feff_records(tmp_path_factory):
    """{name: (record, spectra)} of the four smoke records."""
    directory = tmp_path_factory.mktemp("orientation")
    niho2 = niho2_structure()
    structures = {
        "nio_cubic": (nio_structure(0.0), "Ni"),
        "nio_stretched": (nio_structure(3.0), "Ni"),
        "niho2": (niho2, "Ni"),
        "niho2_turned": (turned_rigidly(niho2), "Ni"),
    }
    return {
        name: computed(structure, name, element, directory)
        for name, (structure, element) in structures.items()
    }


@pytest.mark.slow
def test_sams_of_the_record_basis_is_the_engines_sams(feff_records, tmp_path):
    for record, spectra in feff_records.values():
        assert sams_in_basis(spectra.energies, spectra.sigma, record.basis) == pytest.approx(
            spectra.sams, abs=1e-4
        )
    # and FEFF's own three polarizations along the basis axes (the axes route) give it too
    record, spectra = feff_records["niho2"]
    three = compute_record_spectra(record, "smoke", tmp_path / "axes", route="axes")
    assert three.sigma is None and three.sites[0]["n_polarizations"] == 3
    from_sigma = sams_in_basis(spectra.energies, spectra.sigma, record.basis)
    assert from_sigma == pytest.approx(three.sams, abs=1e-4)


@pytest.mark.slow
def test_cubic_nio_has_no_anisotropy_in_any_orientation(feff_records):
    _, spectra = feff_records["nio_cubic"]
    assert sams_max(spectra.energies, spectra.sigma).value < 1e-3
    assert anisotropy_invariant(spectra.energies, spectra.sigma) < 1e-3


@pytest.mark.slow
def test_tetragonal_nio_is_at_its_maximum_in_the_quadrupole_basis(feff_records):
    record, spectra = feff_records["nio_stretched"]
    maximum = sams_max(spectra.energies, spectra.sigma, record.basis)
    assert spectra.sams > 0.01
    assert spectra.sams - 1e-6 <= maximum.value <= spectra.sams + 1e-3


@pytest.mark.slow
def test_monoclinic_niho2_gains_by_turning_the_basis(feff_records):
    record, spectra = feff_records["niho2"]
    maximum = sams_max(spectra.energies, spectra.sigma, record.basis)
    assert maximum.value > spectra.sams + 0.05  # measured: 0.325 → 0.422 (smoke)
    assert maximum.value <= 3 * anisotropy_invariant(spectra.energies, spectra.sigma)
    # the mirror's normal [1 -1 0] is a principal axis of σ at every energy, hence an axis
    nearest = lattice_directions(maximum.axes, record.structure.lattice)
    mirror = [d for d in nearest if d.uvw == (1, -1, 0)]
    assert len(mirror) == 1 and mirror[0].angle_deg < 0.01


@pytest.mark.slow
def test_turning_the_crystal_turns_sigma_and_keeps_the_orientation_results(feff_records):
    record, spectra = feff_records["niho2"]
    turned_record, turned = feff_records["niho2_turned"]
    scale = np.abs(spectra.sigma).max()
    assert np.allclose(turned.energies, spectra.energies)
    assert np.abs(rotate_sigma(spectra.sigma, TURN) - turned.sigma).max() < 1e-4 * scale
    results = []
    for rec, spec in ((record, spectra), (turned_record, turned)):
        maximum = sams_max(spec.energies, spec.sigma, rec.basis)
        uvw = [d.uvw for d in lattice_directions(maximum.axes, rec.structure.lattice)]
        results.append((maximum.value, anisotropy_invariant(spec.energies, spec.sigma), uvw))
    (value, a_inv, uvw), (turned_value, turned_a_inv, turned_uvw) = results
    assert turned_value == pytest.approx(value, abs=1e-4)
    assert turned_a_inv == pytest.approx(a_inv, abs=1e-4)
    assert turned_uvw == uvw


@pytest.mark.slow
def test_mu_from_sigma_is_feffs_own_spectrum_along_that_direction(feff_records, tmp_path):
    """A one-site record: the crystal's σ is that site's, so a direct FEFF run must agree."""
    record, spectra = feff_records["niho2"]
    (site,) = record.absorber_sites
    assert site.multiplicity == 1
    direction = np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5])
    feff_frame = record.basis.T @ direction  # FEFF runs in the basis frame
    inputs = site_input(record, site.index, "smoke")
    run = run_site(inputs, site.index, feff_frame[None], tmp_path, Budget(None))
    energies, mu = run.energies, run.mu
    assert np.allclose(energies, spectra.energies)
    predicted = mu_along(spectra.sigma, direction)
    assert np.abs(predicted - mu[0]).max() < 1e-4 * np.abs(mu[0]).max()


# ---- command line ----------------------------------------------------------------------------


def _cif(structure, path: Path) -> Path:
    structure.to(filename=str(path))
    return path


@pytest.mark.slow
def test_sams_json_adds_the_orientation_keys(feff_records, tmp_path):
    record, spectra = feff_records["niho2"]
    path = _cif(record.structure, tmp_path / "NiHO2.cif")
    args = ["sams", str(path), "--element", "Ni", "--preset", "smoke", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["SAMS"] == pytest.approx(spectra.sams, abs=1e-6)
    maximum = sams_max(spectra.energies, spectra.sigma, record.basis)
    assert summary["SAMS_max"] == pytest.approx(maximum.value, abs=1e-6)
    basis = np.array(summary["basis_max"])  # the CIF's Cartesian frame, not the fixture's
    assert np.allclose(basis.T @ basis, np.eye(3), atol=1e-9)
    assert [1, -1, 0] in [axis["uvw"] for axis in summary["axes_max_uvw"]]
    a_inv = anisotropy_invariant(spectra.energies, spectra.sigma)
    assert summary["A_inv"] == pytest.approx(a_inv, abs=1e-6)
    pair = summary["best_pair"]
    assert len(pair["directions"]) == 2 and len(pair["uvw"]) == 2
    assert pair["value"] == pytest.approx(best_pair(spectra.energies, spectra.sigma).value, 1e-6)


@pytest.mark.slow
def test_spectra_of_a_file_cubic_nio_is_the_same_for_every_polarization(tmp_path):
    path = _cif(nio_structure(0.0), tmp_path / "NiO.cif")
    args = ["spectra", str(path), "-e", "Ni", "--preset", "smoke", "--uvw", "1,2,3"]
    result = CliRunner().invoke(main, [*args, "--polarization", "1 0 0", "--polarization", "1,1,1"])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.strip().splitlines()
    assert header == "energy_eV,e(1 0 0),e(1 1 1),[1 2 3]"
    table = np.array([[float(x) for x in row.split(",")] for row in rows])
    mu = table[:, 1:]
    assert np.abs(mu - mu[:, :1]).max() < 1e-3 * mu.max()


@pytest.fixture
def stored_niho2(feff_records, db_config, tmp_path):
    """The NiHO2 task and structure in a fresh database; a second record without σ."""
    record, spectra = feff_records["niho2"]
    client = db_config.client()
    tasks = db_config.collection(TASK_COLLECTION, client)
    insert_task(tasks, TaskDocument.from_spectra(record.summary(), spectra.as_dict()))
    axes_only = {**record.summary(), "record_key": "old:Ni", "structure_id": "old"}
    insert_task(tasks, TaskDocument.from_spectra(axes_only, {**spectra.as_dict(), "sigma": None}))
    structures = db_config.collection("structures", client)
    structures.insert_one({"structure_id": "niho2", "structure": record.structure.as_dict()})
    client.close()
    return db_config.write_db_json(tmp_path / "db.json")


@pytest.mark.slow
def test_spectra_of_a_stored_record_writes_csv_and_figure(feff_records, stored_niho2, tmp_path):
    record, spectra = feff_records["niho2"]
    out = tmp_path / "fig2"
    args = ["spectra", "--record", "niho2:Ni", "--db-file", str(stored_niho2), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--uvw", "1 -1 0", "--polarization", "0 0 2"])
    assert result.exit_code == 0, result.output
    table = np.loadtxt(out / "niho2_Ni_smoke_spectra.csv", delimiter=",", skiprows=1)
    assert np.allclose(table[:, 0], spectra.energies, atol=1e-4)
    along_mirror_normal = lattice_vector([1, -1, 0], record.structure.lattice)
    assert np.allclose(table[:, 1], mu_along(spectra.sigma, [0, 0, 1]), rtol=1e-6)
    assert np.allclose(table[:, 2], mu_along(spectra.sigma, along_mirror_normal), rtol=1e-6)
    assert (out / "niho2_Ni_smoke_fig2.png").stat().st_size > 10_000


@pytest.mark.slow
def test_spectra_of_a_record_without_sigma_or_task_is_a_one_line_error(stored_niho2):
    for key, message in (("old:Ni", "three polarizations only"), ("absent:Ni", "no successful")):
        args = ["spectra", "--record", key, "--db-file", str(stored_niho2)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1
        assert message in result.output and result.output.count("\n") == 1
        assert isinstance(result.exception, SystemExit)  # no traceback


@pytest.mark.parametrize(
    "option",
    [
        ["--polarization", "0 0 0"],
        ["--polarization", "1 x 0"],
        ["--polarization", "1 0"],
        ["--polarization", "nan 0 1"],
        ["--uvw", "0,0,0"],
        ["--uvw", "1,0.5,0"],
    ],
)
def test_bad_polarizations_are_rejected_before_feff(option, tmp_path):
    path = _cif(nio_structure(0.0), tmp_path / "NiO.cif")
    result = CliRunner().invoke(main, ["spectra", str(path), "-e", "Ni", *option])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_spectra_needs_exactly_one_source(tmp_path):
    path = _cif(nio_structure(0.0), tmp_path / "NiO.cif")
    for args in (["spectra"], ["spectra", str(path), "--record", "x:Ni"], ["spectra", str(path)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "Error" in result.output
