"""A full disk is a recorded failure (reason ``disk_full``) and costs no other work.

FireWorks' own Rocket runs the real workflow in this process (``launch_rocket``), so that the
full disk can be simulated: ``shutil.disk_usage`` reports little free space, or writing the
result file fails with ENOSPC. The workflow that runs after the disk is freed computes real
FEFF10 ("smoke" preset, rock-salt NiO: seconds).
"""

from __future__ import annotations

import errno
import gzip
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
from fireworks import FWorker
from fireworks.core.rocket_launcher import launch_rocket
from test_workflow import rock_salt

from vtc_fw import firetasks
from vtc_fw.documents.task import TaskDocument
from vtc_fw.errors import FeffError
from vtc_fw.workflow.maker import XesWorkflowMaker

DiskUsage = namedtuple("DiskUsage", "total used free")


def run_one(launchpad, db_config, directory: Path) -> None:
    """Check out and run one Firework in this process, in the working directory."""
    db_file = db_config.write_db_json(directory / "db.json")
    launch_rocket(launchpad, FWorker(env={"db_file": str(db_file)}), strm_lvl="ERROR")


def add_nio(launchpad, structure_id: str) -> str:
    workflow = XesWorkflowMaker(preset="smoke").make(rock_salt("Ni", 4.17), structure_id, "Ni")
    launchpad.add_wf(workflow)
    return workflow.metadata["task_key"]


def state_of(launchpad, key: str) -> str:
    return launchpad.fireworks.find_one({"spec.task_key": key})["state"]


def test_nearly_full_disk_starts_no_feff_and_the_next_record_runs_when_freed(
    db_config, launchpad, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    first, second = add_nio(launchpad, "test:NiO-full"), add_nio(launchpad, "test:NiO-freed")
    real_usage = shutil.disk_usage
    with monkeypatch.context() as patched:
        patched.setattr(shutil, "disk_usage", lambda path: DiskUsage(2**40, 2**40, 100 * 2**20))
        run_one(launchpad, db_config, tmp_path)
    assert shutil.disk_usage is real_usage
    tasks = db_config.collection("tasks")
    (failed,) = tasks.find({})
    assert failed["task_key"] in (first, second) and failed["state"] == "failed"
    assert failed["error"]["reason"] == "disk_full"
    assert "100 MiB free" in failed["error"]["message"]
    assert failed["attempts"] == []  # FEFF never started
    assert not list(tmp_path.glob("**/feff_*"))
    assert state_of(launchpad, failed["task_key"]) == "FIZZLED"

    run_one(launchpad, db_config, tmp_path)
    other = second if failed["task_key"] == first else first
    assert state_of(launchpad, other) == "COMPLETED"
    assert tasks.find_one({"task_key": other})["state"] == "successful"
    assert tasks.count_documents({}) == 2

    # the failed record reruns once the disk has room, and its success replaces the failure
    launchpad.rerun_fw(launchpad.fireworks.find_one({"spec.task_key": failed["task_key"]})["fw_id"])
    run_one(launchpad, db_config, tmp_path)
    assert tasks.find_one({"task_key": failed["task_key"]})["state"] == "successful"


def test_result_file_on_a_full_disk_reaches_the_database_through_the_spec(
    db_config, launchpad, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    disordered = rock_salt("Ni", 4.2)
    disordered.replace_species({"Ni": {"Ni": 0.5, "Mg": 0.5}})  # fails fast, before FEFF
    workflow = XesWorkflowMaker(preset="smoke").make(disordered, "test:NiMgO", "Ni")
    launchpad.add_wf(workflow)

    def full_disk(path, mode="rb", *args, **kwargs):
        Path(path).write_bytes(b"\x1f\x8b")  # the first bytes made it, then the disk was full
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with monkeypatch.context() as patched:
        patched.setattr(gzip, "open", full_disk)
        run_one(launchpad, db_config, tmp_path)

    task = db_config.collection("tasks").find_one({"task_key": workflow.metadata["task_key"]})
    assert task["state"] == "failed" and task["error"]["reason"] == "disk_full"
    assert "No space left on device" in task["error"]["message"]
    assert state_of(launchpad, workflow.metadata["task_key"]) == "FIZZLED"
    launch = launchpad.launches.find_one({"state": "FIZZLED"})
    stacktrace = launch["action"]["stored_data"]["_exception"]["_stacktrace"]
    assert "FeffError: " in stacktrace and "failed (disk_full)" in stacktrace
    assert not list(tmp_path.glob(f"**/{firetasks.RESULT_FILE}*"))  # no partial file left


def test_a_failed_task_document_fails_its_firework_with_its_own_reason():
    error = {"type": "FeffRunError", "reason": "timeout", "message": "the record ran out of time"}
    document = TaskDocument.from_failure("test:NiO:Ni", "smoke", error)
    failure = firetasks.task_failure(document)
    assert isinstance(failure, FeffError) and failure.reason == "timeout"
    assert str(failure) == f"{document.task_key} failed (timeout): the record ran out of time"


def test_a_failure_that_leaves_the_disk_full_is_called_a_full_disk(tmp_path, monkeypatch):
    crash = RuntimeError("feff10 failed in pot: forrtl: severe (38): error during write")
    assert firetasks.disk_full_cause(crash, tmp_path) is crash  # this disk has room
    monkeypatch.setattr(shutil, "disk_usage", lambda path: DiskUsage(2**40, 2**40, 3 * 2**20))
    cause = firetasks.disk_full_cause(crash, tmp_path / "not" / "made" / "yet")
    assert cause.reason == "disk_full" and cause.__cause__ is crash
    assert str(cause).startswith("3 MiB left on the disk of") and "severe (38)" in str(cause)
    with pytest.raises(firetasks.DiskFullError, match="a FEFF record needs 512 MiB"):
        firetasks.check_free_space(tmp_path)
