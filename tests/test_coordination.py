"""First-shell descriptors (vtc_fw.science.coordination) on textbook geometries and real NiO.

Ideal polyhedra are built from their definitions; NiO is rock salt with a = 4.1771 Å. Every
expected value follows from the descriptor's definition, not from a previous run.
"""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation

from vtc_fw.science.clusters import Cluster
from vtc_fw.science.coordination import (
    FIRST_SHELL_FEATURES,
    first_shell_descriptors,
    hoppe_weights,
    record_first_shell,
)
from vtc_fw.science.features import pauling_electronegativity
from vtc_fw.science.records import make_records

AXES = np.vstack([np.eye(3), -np.eye(3)])
"""Unit vectors of a regular octahedron."""


def cluster(ligands: np.ndarray, ligand: str = "O", absorber: str = "Ni") -> Cluster:
    coords = np.vstack([np.zeros(3), ligands])
    species = (absorber, *[ligand] * len(ligands))
    return Cluster(
        0, species, coords, None, shell_radius=float(np.linalg.norm(coords, axis=1).max())
    )


def test_regular_octahedron():
    values = first_shell_descriptors(cluster(2.1 * AXES))
    assert values["econ"] == pytest.approx(6.0)
    assert values["bond_length"] == pytest.approx(2.1)
    for name in ("bond_distortion", "off_centering", "shell_anisotropy"):
        assert values[name] == pytest.approx(0.0, abs=1e-12), name
    expected = pauling_electronegativity("O") - pauling_electronegativity("Ni")
    assert values["ligand_en_difference"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("ligands", "econ", "anisotropy", "off_centering"),
    [
        (np.array([[0, 0, 1], [0, 0, -1]]), 2.0, 1.0, 0.0),  # linear
        (AXES[[0, 1, 3, 4]], 4.0, 0.5, 0.0),  # square planar
        (np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3), 4.0, 0.0, 0.0),
        (AXES[:5], 5.0, 0.2, 0.2),  # square pyramid: Σu = e_z, over 5 ligands
        (np.array([[0, 0, 1]]), 1.0, 1.0, 1.0),  # one ligand
    ],
)
def test_ideal_shells(ligands, econ, anisotropy, off_centering):
    values = first_shell_descriptors(cluster(1.9 * np.asarray(ligands, dtype=float)))
    assert values["econ"] == pytest.approx(econ)
    assert values["shell_anisotropy"] == pytest.approx(anisotropy)
    assert values["off_centering"] == pytest.approx(off_centering)


def test_jahn_teller_elongation_lowers_econ_and_adds_distortion():
    lengths = np.array([2.0, 2.0, 2.0, 2.0, 2.3, 2.3])
    values = first_shell_descriptors(cluster(AXES[[0, 3, 1, 4, 2, 5]] * lengths[:, None]))
    assert 4.0 < values["econ"] < 6.0
    assert values["bond_distortion"] > 0.01
    assert 0.0 < values["shell_anisotropy"] < 0.5
    assert values["off_centering"] == pytest.approx(0.0, abs=1e-12)
    weights, mean = hoppe_weights(lengths)
    assert mean == pytest.approx(weights @ lengths / weights.sum())  # the fixed point


def test_second_shell_barely_counts_and_rotation_changes_nothing():
    ligands = np.vstack(
        [2.1 * AXES, 2.1 * np.sqrt(2) * np.array([[1, 1, 0], [1, -1, 0]]) / np.sqrt(2)]
    )
    inner = first_shell_descriptors(cluster(2.1 * AXES))
    both = first_shell_descriptors(cluster(ligands))
    # weight exp(1 − √2⁶) = e⁻⁷ each, and l_av moves out a little, so the 6 weigh a bit over 1
    assert 2 * np.exp(-7) < both["econ"] - inner["econ"] < 0.01
    rotated = first_shell_descriptors(cluster(Rotation.random(random_state=1).apply(ligands)))
    for name in FIRST_SHELL_FEATURES:
        assert rotated[name] == pytest.approx(both[name], abs=1e-12), name


def test_nio_record_sees_its_oxygen_octahedron():
    nio = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.1771), ["Ni", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    (record,) = make_records(nio, structure_id="test", elements=["Ni"])
    values = record_first_shell(record)
    assert set(values) == set(FIRST_SHELL_FEATURES)
    # 6 O at a/2 weigh 1; the 12 Ni at a/√2 add about 12·exp(1 − 8) ≈ 0.011
    assert 6 + 12 * np.exp(-7) < values["econ"] < 6.05
    assert values["bond_length"] == pytest.approx(4.1771 / 2, rel=1e-3)
    assert values["shell_anisotropy"] == pytest.approx(0.0, abs=1e-9)
