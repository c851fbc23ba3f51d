"""Export and import of task documents (``.jsonl.gz``): lossless and idempotent.

The successful task comes from a real FEFF10 run ("smoke" preset, rock-salt NiO) made by the
workflow's own FireTask in this test; the failed one from a structure the records refuse.
"""

from __future__ import annotations

import gzip
import json
from contextlib import chdir
from pathlib import Path

import pytest
from click.testing import CliRunner
from pymatgen.core import Lattice, Structure

from vtc_fw.app.transfer import export_tasks, import_tasks
from vtc_fw.cli import main
from vtc_fw.documents.task import ensure_task_indexes, insert_task
from vtc_fw.errors import TransferError
from vtc_fw.firetasks import RESULT_FILE, RunXesTask, read_result, task_document


def _run_record(structure: Structure, structure_id: str, element: str, directory: Path) -> dict:
    directory.mkdir()
    task = RunXesTask(
        structure=structure.as_dict(), structure_id=structure_id, element=element, preset="smoke"
    )
    with chdir(directory):
        task.run_task({})
    return task_document(read_result(directory / RESULT_FILE)).as_mongo()


@pytest.fixture(scope="module")
def task_documents(tmp_path_factory) -> list[dict]:
    """One successful (real FEFF) and one failed task document."""
    root = tmp_path_factory.mktemp("transfer_runs")
    nio = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.17), ["Ni", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    ).get_primitive_structure()
    disordered = nio.copy()
    disordered.replace_species({"Ni": {"Ni": 0.5, "Mg": 0.5}})
    return [
        _run_record(nio, "transfer:NiO", "Ni", root / "nio"),
        _run_record(disordered, "transfer:NiMgO", "Ni", root / "nimgo"),
    ]


def _filled(db_config, documents) -> None:
    tasks = db_config.collection("tasks")
    ensure_task_indexes(tasks)
    for document in documents:
        insert_task(tasks, document)


def test_export_then_import_elsewhere_reproduces_every_document(
    db_config, mongo_server, task_documents, tmp_path
):
    _filled(db_config, task_documents)
    path = tmp_path / "tasks.jsonl.gz"
    assert export_tasks(db_config, path) == 2
    with gzip.open(path, "rt") as handle:
        lines = [json.loads(line) for line in handle]
    assert {line["record_key"] for line in lines} == {"transfer:NiO:Ni", "transfer:NiMgO:Ni"}

    target = db_config.with_database(db_config.database + "_copy")
    try:
        assert import_tasks(target, path) == {"inserted": 2, "replaced": 0, "kept_successful": 0}
        source_tasks = db_config.collection("tasks")
        for copied in target.collection("tasks").find({}, {"_id": False}):
            original = source_tasks.find_one({"task_key": copied["task_key"]}, {"_id": False})
            assert copied == original  # spectra, dates, errors: all survive the round trip
    finally:
        target.client().drop_database(target.database)


def test_importing_twice_adds_nothing_and_keeps_successes(db_config, task_documents, tmp_path):
    _filled(db_config, task_documents)
    path = tmp_path / "tasks.jsonl.gz"
    export_tasks(db_config, path, {"state": "successful"})
    assert import_tasks(db_config, path) == {"inserted": 0, "replaced": 0, "kept_successful": 1}
    assert import_tasks(db_config, path, replace=True)["replaced"] == 1
    assert import_tasks(db_config, path)["inserted"] == 0
    assert db_config.collection("tasks").count_documents({}) == 2
    successful = task_documents[0]
    late = {"type": "FeffError", "reason": "feff_failed", "message": "late"}
    failed_copy = {**successful, "state": "failed", "error": late}
    stale = tmp_path / "stale.jsonl.gz"
    with gzip.open(stale, "wt") as handle:
        handle.write(json.dumps(failed_copy, default=str) + "\n")
    assert import_tasks(db_config, stale)["kept_successful"] == 1
    kept = db_config.collection("tasks").find_one({"task_key": successful["task_key"]})
    assert kept["state"] == "successful"


def test_a_malformed_line_is_reported_with_its_number(db_config, tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write('{"task_key": "a:Ni:smoke"}\n')
    with pytest.raises(TransferError, match="line 1"):
        import_tasks(db_config, path)


def test_cli_export_and_import(db_config, task_documents, tmp_path):
    _filled(db_config, task_documents)
    db_file = db_config.write_db_json(tmp_path / "db.json")
    path = tmp_path / "failed.jsonl.gz"
    runner = CliRunner()
    exported = runner.invoke(
        main,
        ["export", str(path), "--query", '{"state": "failed"}', "--db-file", str(db_file)],
    )
    assert exported.exit_code == 0, exported.output
    assert "exported 1 task documents" in exported.output
    imported = runner.invoke(main, ["import", str(path), "--db-file", str(db_file)])
    assert imported.exit_code == 0, imported.output
    assert "0 inserted, 1 replaced" in imported.output


def _write_lines(path, documents) -> None:
    with gzip.open(path, "wt") as handle:
        for document in documents:
            handle.write(json.dumps(document, default=str) + "\n")


def test_an_imported_success_never_overwrites_a_computed_one(db_config, task_documents, tmp_path):
    """The audit's case: an imported "successful" task with SAMS 99 replaced a real result."""
    _filled(db_config, task_documents)
    real = next(t for t in task_documents if t["state"] == "successful")
    forged = tmp_path / "forged.jsonl.gz"
    _write_lines(forged, [{**real, "sams": 99.0}])
    assert import_tasks(db_config, forged)["kept_successful"] == 1
    stored = db_config.collection("tasks").find_one({"task_key": real["task_key"]})
    assert stored["sams"] == real["sams"]


def test_a_task_whose_key_does_not_match_its_content_is_rejected(
    db_config, task_documents, tmp_path
):
    real = task_documents[0]
    lying = tmp_path / "lying.jsonl.gz"
    _write_lines(lying, [real, {**real, "task_key": "oqmd-icsd:other:Fe:paper"}])
    with pytest.raises(TransferError, match="line 2: keys"):
        import_tasks(db_config, lying)
    assert db_config.collection("tasks").count_documents({}) == 0  # all or nothing


@pytest.mark.parametrize("damage", ["truncated", "not_gzip"])
def test_a_damaged_file_imports_nothing_and_says_so_in_one_line(
    db_config, task_documents, tmp_path, damage
):
    whole = tmp_path / "whole.jsonl.gz"
    _write_lines(whole, task_documents)
    damaged = tmp_path / f"{damage}.jsonl.gz"
    data = whole.read_bytes()
    damaged.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"plain text\n")
    with pytest.raises(TransferError, match="nothing imported"):
        import_tasks(db_config, damaged)
    assert db_config.collection("tasks").count_documents({}) == 0
    db_file = db_config.write_db_json(tmp_path / "db.json")
    result = CliRunner().invoke(main, ["import", str(damaged), "--db-file", str(db_file)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error:")
