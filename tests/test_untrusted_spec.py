"""A database writer cannot make a worker run a program (issue 22's audit, item 4).

The audit stored a ``feff_cmd`` in a Firework's spec and a worker whose own ``feff_cmd`` is null
ran it through a shell. Now a spec may only name a command of the worker's env (``>>key<<``);
a command written in the spec fails the record with reason ``untrusted_spec`` and runs nothing.
"""

from pathlib import Path

import pytest
from fireworks import Firework, FWorker, PyTask, ScriptTask
from fireworks.core.rocket_launcher import launch_rocket
from fireworks.features.background_task import BackgroundTask
from test_workflow import rock_salt

from vtc_fw.firetasks import trusted_fireworks_query
from vtc_fw.workflow.local_workers import worker_files
from vtc_fw.workflow.maker import XesWorkflowMaker


def test_a_command_written_in_the_spec_is_refused_and_runs_nothing(
    db_config, launchpad, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    attack = XesWorkflowMaker(preset="smoke", feff_cmd=f"touch {marker}")
    launchpad.add_wf(attack.make(rock_salt("Ni", 4.17), "test:NiO-attack", "Ni"))
    db_file = db_config.write_db_json(tmp_path / "db.json")
    launch_rocket(launchpad, FWorker(env={"db_file": str(db_file)}), strm_lvl="ERROR")
    assert not marker.exists()
    (task,) = db_config.collection("tasks").find({})
    assert task["state"] == "failed" and task["error"]["reason"] == "untrusted_spec"
    assert launchpad.fireworks.find_one({})["state"] == "FIZZLED"


def test_a_command_the_worker_names_still_runs(db_config, launchpad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "feff.sh"
    script.write_text(f"#!/bin/sh\ntouch {tmp_path / 'ran'}\nexit 3\n")
    script.chmod(0o755)
    workflow = XesWorkflowMaker(preset="smoke").make(rock_salt("Ni", 4.17), "test:NiO", "Ni")
    launchpad.add_wf(workflow)
    db_file = db_config.write_db_json(tmp_path / "db.json")
    env = {"db_file": str(db_file), "feff_cmd": str(script)}
    launch_rocket(launchpad, FWorker(env=env), strm_lvl="ERROR")
    assert Path(tmp_path / "ran").exists()  # the worker's own command ran (and failed: exit 3)
    (task,) = db_config.collection("tasks").find({})
    assert task["error"]["reason"] in ("nonzero_exit", "feff_ladder_exhausted")


# FireWorks' spec names the classes a worker instantiates and runs: `_tasks` entries by `_fw_name`
# (FireWorks' ScriptTask runs a shell command, PyTask any Python function), `_background_tasks`
# runs more of them beside the main ones. Any database writer can queue such a Firework, or add
# such an entry to a queued vtc-fw one. vtc-fw's workers check out only Fireworks of its own tasks.

MY_FWORKER = Path(__file__).parents[1] / "my_fworker.yaml"


def _script(marker: Path) -> dict:
    return ScriptTask(script=f"touch {marker}", use_shell=True).to_dict()


def _queued(launchpad, spec_update: dict | None = None, tasks: list | None = None) -> int:
    """A queued Firework: a vtc-fw one as submitted, or ``tasks``; then a writer's edit."""
    if tasks is None:
        workflow = XesWorkflowMaker(preset="smoke").make(rock_salt("Ni", 4.17), "test:NiO", "Ni")
    else:
        workflow = Firework(tasks)
    fw_id = min(launchpad.add_wf(workflow).values())
    if spec_update:
        launchpad.fireworks.update_one({"fw_id": fw_id}, spec_update)
    return fw_id


ATTACKS = {
    "ScriptTask": lambda lp, m: _queued(lp, tasks=[ScriptTask(script=f"touch {m}")]),
    "PyTask named by its module path": lambda lp, m: _queued(
        lp,
        {
            "$set": {
                "spec._tasks.0._fw_name": "{{fireworks.user_objects.firetasks.script_task.PyTask}}"
            }
        },
        tasks=[PyTask(func="os.system", args=[f"touch {m}"])],
    ),
    "_tasks as one task, not a list": lambda lp, m: _queued(
        lp, {"$set": {"spec._tasks": _script(m)}}
    ),
    "a ScriptTask added to a vtc-fw Firework": lambda lp, m: _queued(
        lp, {"$push": {"spec._tasks": _script(m)}}
    ),
    "_background_tasks": lambda lp, m: _queued(
        lp,
        {
            "$set": {
                "spec._background_tasks": [
                    BackgroundTask([ScriptTask(script=f"touch {m}")]).to_dict()
                ]
            }
        },
    ),
    "_launch_dir": lambda lp, m: _queued(
        lp, {"$set": {"spec._launch_dir": str(m.parent / "elsewhere")}}
    ),
}


def _vtc_worker(db_config, tmp_path) -> FWorker:
    """The shipped my_fworker.yaml, with this test's database."""
    worker = FWorker.from_file(str(MY_FWORKER))
    worker.env["db_file"] = str(db_config.write_db_json(tmp_path / "db.json"))
    return worker


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_vtc_fw_worker_never_checks_out_a_foreign_firework(
    attack, db_config, launchpad, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    fw_id = ATTACKS[attack](launchpad, marker)
    assert not launch_rocket(launchpad, _vtc_worker(db_config, tmp_path), strm_lvl="ERROR")
    assert not marker.exists() and not (tmp_path / "elsewhere").exists()
    assert launchpad.fireworks.find_one({"fw_id": fw_id})["state"] == "READY"


@pytest.mark.parametrize(
    "attack", ["ScriptTask", "PyTask named by its module path", "_tasks as one task, not a list"]
)
def test_without_the_query_a_worker_runs_the_writers_command(
    attack, launchpad, tmp_path, monkeypatch
):
    """The route is real: FireWorks' default worker (query {}) runs what the spec names."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    ATTACKS[attack](launchpad, marker)
    launch_rocket(launchpad, FWorker(), strm_lvl="ERROR")
    assert marker.exists()


def test_a_vtc_fw_firework_still_runs_on_the_shipped_worker(
    db_config, launchpad, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    fw_id = _queued(launchpad)
    worker = _vtc_worker(db_config, tmp_path)
    worker.env["feff_cmd"] = "/bin/false"  # no FEFF run needed: the Firework fizzles quickly
    assert launch_rocket(launchpad, worker, strm_lvl="ERROR")
    assert launchpad.fireworks.find_one({"fw_id": fw_id})["state"] == "FIZZLED"
    assert db_config.collection("tasks").count_documents({}) == 1


def test_local_workers_and_my_fworker_carry_the_query(db_config, tmp_path):
    _, fworker_file = worker_files(db_config, tmp_path / "run", tmp_path / "scratch")
    local = FWorker.from_file(str(fworker_file))
    shipped = FWorker.from_file(str(MY_FWORKER))
    assert local._query == shipped._query == trusted_fireworks_query()
