"""``vtc-fw submit``: structures become documents and one workflow per new record, once."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from pymatgen.core import Lattice, Structure

from vtc_fw.cli import main
from vtc_fw.documents.task import TaskDocument, ensure_task_indexes, insert_task
from vtc_fw.workflow.maker import XesWorkflowMaker
from vtc_fw.workflow.submission import open_source, submit_entries


@pytest.fixture
def cif_dir(tmp_path):
    """Rock-salt NiO, a cell with Fe and Co, an MgO (no 3d metal), an unreadable file."""
    directory = tmp_path / "cifs"
    directory.mkdir()
    rock_salt = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.17), ["Ni", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    rock_salt.to(filename=str(directory / "NiO.cif"))
    two_metals = Structure(
        Lattice.cubic(4.2),
        ["Fe", "Co", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )
    two_metals.to(filename=str(directory / "FeCoO2.cif"))
    rock_salt.copy().replace_species({"Ni": "Mg"}).to(filename=str(directory / "MgO.cif"))
    (directory / "broken.cif").write_text("data_broken\n_cell_length_a oops\n")
    return directory


def test_submit_adds_one_workflow_per_record_and_nothing_on_resubmission(db_config, cif_dir):
    maker = XesWorkflowMaker(preset="smoke")
    report = submit_entries(open_source("cif-dir", path=str(cif_dir)), db_config, maker)
    assert sorted(report.added) == [
        "file:FeCoO2:Co:smoke",
        "file:FeCoO2:Fe:smoke",
        "file:NiO:Ni:smoke",
    ]
    assert [structure_id for structure_id, _ in report.unreadable] == ["file:broken"]
    launchpad = db_config.launchpad()
    (nio,) = launchpad.workflows.find({"metadata.record_key": "file:NiO:Ni"})
    assert nio["metadata"] | {"vtc_fw_version": None} == {
        "task_key": "file:NiO:Ni:smoke",
        "record_key": "file:NiO:Ni",
        "structure_id": "file:NiO",
        "formula": "NiO",
        "element": "Ni",
        "preset": "smoke",
        "vtc_fw_version": None,
    }
    structures = db_config.collection("structures")
    assert structures.count_documents({}) == 4
    assert structures.find_one({"structure_id": "file:broken"})["error"]

    again = submit_entries(open_source("cif-dir", path=str(cif_dir)), db_config, maker)
    assert again.added == [] and len(again.existing) == 3
    assert launchpad.workflows.count_documents({}) == 3
    assert structures.count_documents({}) == 4


def test_submit_skips_records_with_a_successful_task_and_filters_elements(db_config, cif_dir):
    tasks = db_config.collection("tasks")
    ensure_task_indexes(tasks)
    error = {"type": "FeffError", "reason": "feff_failed", "message": "y"}
    done = TaskDocument.from_failure("file:FeCoO2:Fe", "smoke", error)
    insert_task(tasks, done.as_mongo() | {"state": "successful", "error": None})
    report = submit_entries(
        open_source("cif-dir", path=str(cif_dir)),
        db_config,
        XesWorkflowMaker(preset="smoke"),
        elements=["Fe", "Co"],
    )
    assert report.added == ["file:FeCoO2:Co:smoke"]
    assert report.existing == ["file:FeCoO2:Fe:smoke"]


def test_cli_submit_prints_what_it_added(db_config, cif_dir, tmp_path):
    db_file = db_config.write_db_json(tmp_path / "db.json")
    arguments = ["submit", "--source", "cif-dir", "--path", str(cif_dir), "--preset", "smoke"]
    options = ["--timeout", "900", "--db-file", str(db_file)]
    result = CliRunner().invoke(main, [*arguments, *options])
    assert result.exit_code == 1, result.output  # broken.cif and MgO.cif got no workflow
    assert "3 workflows added" in result.stdout
    assert "unreadable file:broken" in result.stderr
    assert "unusable file:MgO: file:MgO (MgO) contains no 3d transition metal" in result.stderr
    tasks = [fw["spec"]["_tasks"][0] for fw in db_config.launchpad().fireworks.find({})]
    assert len(tasks) == 3 and all(task["timeout_s"] == 900 for task in tasks)
    unknown = CliRunner().invoke(main, [*arguments[:-1], "nonsense", "--db-file", str(db_file)])
    assert unknown.exit_code != 0 and "unknown preset" in unknown.output


def test_a_structure_repeated_in_one_submission_is_computed_once(db_config, cif_dir, tmp_path):
    nio = Structure.from_file(cif_dir / "NiO.cif")
    nio.get_primitive_structure().to(filename=str(cif_dir / "NiO_primitive.cif"))
    shifted = nio * (1, 1, 2)
    shifted.translate_sites(range(len(shifted)), [0.1, 0.2, 0.05])  # another origin, 2 cells
    shifted.to(filename=str(cif_dir / "NiO_supercell.cif"))
    strained = nio.copy()
    strained.apply_strain([0.0, 0.0, 0.3])  # tetragonal NiO: another structure, computed
    strained.to(filename=str(cif_dir / "NiO_strained.cif"))
    db_file = db_config.write_db_json(tmp_path / "db.json")
    arguments = ["submit", "--source", "cif-dir", "--path", str(cif_dir), "--preset", "smoke"]
    result = CliRunner().invoke(main, [*arguments, "--db-file", str(db_file)])
    # the folder's broken CIF and MgO get no workflow, so submit exits 1 after the others
    assert result.exit_code == 1, result.output
    assert "4 workflows added" in result.output
    assert "2 duplicate structures skipped" in result.output
    keys = db_config.launchpad().workflows.distinct("metadata.task_key")
    assert sorted(key for key in keys if key.startswith("file:NiO")) == [
        "file:NiO:Ni:smoke",
        "file:NiO_strained:Ni:smoke",
    ]
    assert db_config.collection("structures").count_documents({}) == 7  # every one stored


def test_a_structure_already_queued_in_the_database_is_not_queued_again(
    db_config, cif_dir, tmp_path
):
    maker = XesWorkflowMaker(preset="smoke")
    submit_entries(open_source("cif-dir", path=str(cif_dir)), db_config, maker, elements=["Ni"])
    stored_only = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.26), ["Co", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    structures = db_config.collection("structures")
    structures.insert_one(
        {"structure_id": "stored:CoO", "formula": "CoO", "three_d_metals": ["Co"]}
        | {"structure": stored_only.as_dict()}
    )  # stored for its features, never queued: computes nothing
    later = tmp_path / "later"
    later.mkdir()
    nio = Structure.from_file(cif_dir / "NiO.cif")
    nio.get_primitive_structure().to(filename=str(later / "NiO_again.cif"))
    stored_only.to(filename=str(later / "CoO.cif"))
    report = submit_entries(open_source("cif-dir", path=str(later)), db_config, maker)
    assert report.duplicates == [("file:NiO_again", "file:NiO")]
    assert report.added == ["file:CoO:Co:smoke"]
    other_preset = submit_entries(
        open_source("cif-dir", path=str(later)), db_config, XesWorkflowMaker(preset="screen")
    )
    assert other_preset.duplicates == [] and len(other_preset.added) == 2  # not computed yet
