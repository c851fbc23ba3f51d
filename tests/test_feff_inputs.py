"""The FEFF input set, presets and output parsing (no FEFF run).

Recorded outputs of real FEFF10 runs (feff10-rs 0.2.4) made by our engine on primitive NiO
stretched 5 % along c (``vtc_fw.app.distortion.nio_structure(5.0)``):
``tests/data/feff/nio_stretch5_smoke_xmu.dat`` (preset "smoke", polarization along basis x) and
``tests/data/feff/nio_stretch5_paper_convergence.scf`` (preset "paper", the SCF record).
"""

from pathlib import Path

import feff10
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vtc_fw.app.distortion import NIO_A, cr2o3_structure, nio_structure, series_summary
from vtc_fw.errors import FeffError
from vtc_fw.feff import PRESETS, XesInputSet
from vtc_fw.feff.engine import axis_directions, site_input
from vtc_fw.feff.parse import read_xmu, scf_converged
from vtc_fw.science.records import make_records

DATA = Path(__file__).parent / "data" / "feff"


@pytest.fixture(scope="module")
def nio_record():
    return make_records(nio_structure(5.0), structure_id="nio5", elements=["Ni"])[0]


def test_paper_preset_writes_the_cards_of_the_method(nio_record):
    inputs = site_input(nio_record, 0, "paper")
    shell = nio_record.cluster(0).shell_radius
    cards = inputs.cards
    assert cards["EDGE"] == "K" and cards["COREHOLE"] == "RPA" and cards["S02"] == "1"
    assert cards["XES"] == "-25 5 0.2"
    assert cards["SCF"] == f"{shell:.4f} 0 30 0.1 1"
    assert cards["FMS"] == f"{shell:.4f}"
    species, coords = inputs.listed_atoms()
    assert np.linalg.norm(coords, axis=1).max() <= shell + 1.5 + 1e-6
    assert len(species) > 30


def test_feff_frame_is_the_basis_and_potentials_are_by_element(nio_record):
    inputs = site_input(nio_record, 0, "paper")
    cluster = nio_record.cluster(0, radius=nio_record.cluster(0).shell_radius + 1.5)
    # rotation into the basis keeps every distance; the stretch axis (largest extent) is an axis
    assert np.allclose(
        np.linalg.norm(inputs.coords, axis=1), np.linalg.norm(cluster.coords, axis=1)
    )
    assert inputs.potentials == [(0, "Ni"), (1, "O"), (2, "Ni")]
    text = str(inputs.with_polarization(np.array([0.0, 0.0, 2.0])))
    assert "POLARIZATION 0.00000000 0.00000000 1.00000000" in text


def test_feff10_reads_our_feff_inp_back(nio_record, tmp_path):
    inputs = site_input(nio_record, 0, "smoke").with_polarization(np.array([1.0, 0.0, 0.0]))
    parsed = feff10.FeffInput.from_file(str(inputs.write_file(tmp_path)))
    assert parsed.num_atoms == len(inputs.listed_atoms()[0])
    assert parsed.num_potentials == 3
    assert parsed.edge == "K"
    assert not any(card.startswith("SCF") for card in parsed.other_cards)  # smoke: no SCF
    paper = feff10.FeffInput.parse(str(site_input(nio_record, 0, "paper")))
    assert any(card.startswith("SCF") for card in paper.other_cards)


def test_input_set_round_trips_through_a_dict_and_a_file(nio_record, tmp_path):
    inputs = site_input(nio_record, 0, "paper").with_polarization(np.array([0.6, 0.0, 0.8]))
    assert str(XesInputSet.from_dict(inputs.as_dict())) == str(inputs)
    from_file = XesInputSet.from_file(inputs.write_file(tmp_path))
    assert from_file.cards == inputs.cards
    assert from_file.species == inputs.listed_atoms()[0]
    assert np.allclose(from_file.coords, inputs.listed_atoms()[1], atol=1e-6)  # 6 decimals, Å
    assert np.allclose(from_file.polarization, [0.6, 0.0, 0.8])


def test_every_preset_defines_the_same_keys():
    keys = set(PRESETS["paper"])
    assert {"paper", "fast", "smoke"} <= set(PRESETS)
    assert all(set(settings) == keys for settings in PRESETS.values())


def test_axes_route_directions_cover_every_rotated_axis():
    rotations = [np.eye(3), Rotation.from_euler("z", 120, degrees=True).as_matrix()]
    directions, index = axis_directions(rotations)
    assert len(directions) == 5  # z is shared by both sites
    for j, rotation in enumerate(rotations):
        for k in range(3):
            assert abs(abs(directions[index[j, k]] @ rotation[k]) - 1) < 1e-9


def test_read_xmu_gives_a_positive_spectrum_on_an_increasing_grid(tmp_path):
    (tmp_path / "xmu.dat").write_text((DATA / "nio_stretch5_smoke_xmu.dat").read_text())
    energies, mu = read_xmu(tmp_path)
    assert np.all(np.diff(energies) > 0)
    assert 8300 < energies.mean() < 8340  # Ni Kβ emission region, eV
    assert mu.max() > 0


def test_broken_outputs_are_named_errors(tmp_path):
    with pytest.raises(FeffError) as missing:
        read_xmu(tmp_path)
    assert missing.value.reason == "missing_xmu"
    text = (DATA / "nio_stretch5_smoke_xmu.dat").read_text()
    (tmp_path / "xmu.dat").write_text(
        text.replace("E-", "E+", 1).rsplit("\n", 3)[0] + "\n1 2 3 NaN 1 1\n"
    )
    with pytest.raises(FeffError) as nan:
        read_xmu(tmp_path)
    assert nan.value.reason == "nan_spectrum"


def test_scf_convergence_flag(tmp_path):
    """The recorded file converged at its last iteration; cut short, it had not yet."""
    recorded = (DATA / "nio_stretch5_paper_convergence.scf").read_text()
    (tmp_path / "convergence.scf").write_text(recorded)
    assert scf_converged(tmp_path) is True
    (tmp_path / "convergence.scf").write_text("\n".join(recorded.splitlines()[:11]))
    assert scf_converged(tmp_path) is False
    (tmp_path / "convergence.scf").write_text(recorded.splitlines()[0])
    assert scf_converged(tmp_path) is None


def test_strained_series_structures_have_the_paper_geometry():
    cubic, stretched = nio_structure(0.0), nio_structure(5.0)
    assert len(cubic) == 2 and len(cr2o3_structure(0.0)) == 10  # primitive cells
    assert cubic.volume == pytest.approx(NIO_A**3 / 4)
    assert stretched.volume == pytest.approx(1.05 * NIO_A**3 / 4)
    distances = sorted(n.nn_distance for n in stretched.get_neighbors(stretched[0], 2.3))
    assert distances == pytest.approx([NIO_A / 2] * 4 + [1.05 * NIO_A / 2] * 2)


def test_series_summary_reads_linearity_and_minima():
    rows = [{"strain_percent": s, "SAMS": abs(s - 1.0), "QAMS": 2 * s + 1} for s in (-2, 0, 1, 3)]
    summary = series_summary(rows)
    assert summary["r2_QAMS"] == pytest.approx(1.0)
    assert summary["r2_SAMS"] < 0.9
    assert summary["min_strain_SAMS"] == 1.0 and summary["min_strain_QAMS"] == -2.0


def test_shell_atoms_grows_the_cluster_and_the_radii_with_it(nio_record):
    bigger = nio_record.with_shell_atoms(60)
    assert nio_record.with_shell_atoms(30) is nio_record
    np.testing.assert_array_equal(bigger.basis, nio_record.basis)
    small, large = nio_record.cluster(0), bigger.cluster(0)
    assert len(small.species) >= 31 and len(large.species) >= 61
    assert large.shell_radius > small.shell_radius
    settings = PRESETS["paper"] | {"shell_atoms": 60}
    inputs = site_input(bigger, 0, settings)
    assert inputs.cards["FMS"] == f"{large.shell_radius:.4f}"
    _, coords = inputs.listed_atoms()
    # listed to the 60-atom shell + 1.5 Å, not to the 30-atom one
    assert np.linalg.norm(coords, axis=1).max() > small.shell_radius + 1.5
    assert np.linalg.norm(coords, axis=1).max() <= large.shell_radius + 1.5 + 1e-6


def test_scf_shell_atoms_keeps_the_scf_at_its_own_shell(nio_record):
    settings = PRESETS["paper"] | {"shell_atoms": 45}
    settings["scf"] = settings["scf"] | {"shell_atoms": 30}
    inputs = site_input(nio_record.with_shell_atoms(45), 0, settings)
    scf_radius = float(inputs.cards["SCF"].split()[0])
    assert scf_radius == pytest.approx(nio_record.cluster(0).shell_radius, abs=1e-4)
    assert inputs.cards["FMS"] == f"{nio_record.with_shell_atoms(45).cluster(0).shell_radius:.4f}"
    assert "shell_atoms" not in inputs.settings["scf"]
