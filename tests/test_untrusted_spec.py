"""A database writer cannot make a worker run a program (issue 22's audit, item 4).

The audit stored a ``feff_cmd`` in a Firework's spec and a worker whose own ``feff_cmd`` is null
ran it through a shell. Now a spec may only name a command of the worker's env (``>>key<<``);
a command written in the spec fails the record with reason ``untrusted_spec`` and runs nothing.
"""

from pathlib import Path

from fireworks import FWorker
from fireworks.core.rocket_launcher import launch_rocket
from test_workflow import rock_salt

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
