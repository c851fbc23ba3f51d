"""FireWorks production path with real workers: ``rlaunch rapidfire`` subprocesses running real
FEFF10 (the "smoke" preset: a few seconds per record) against the session's database.

Checks: two concurrent workers complete every Firework exactly once, each under a launch id of
its own, with one task document per task key; a broken structure and a FEFF failing through its
whole retry ladder leave FIZZLED Fireworks and failed task documents while the other workflows
complete; a worker killed with SIGKILL in the middle of FEFF is recovered by
``lpad detect_lostruns --rerun`` and a new worker, with no task lost or duplicated.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fireworks import FWorker, LaunchPad
from pymatgen.core import Lattice, Structure

from vtc_fw.db.config import DbConfig
from vtc_fw.workflow.maker import XesWorkflowMaker

BIN = Path(sys.executable).parent
ROCK_SALT_OXIDES = {"Ti": 4.18, "V": 4.09, "Mn": 4.44, "Fe": 4.33, "Co": 4.26, "Ni": 4.17}
"""Rock-salt monoxides and their lattice constants (Å): one-site records, small clusters."""


def rock_salt(metal: str, a: float) -> Structure:
    """Primitive rock-salt MO cell."""
    conventional = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(a), [metal, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    return conventional.get_primitive_structure()


def worker_files(config: DbConfig, directory: Path) -> tuple[Path, Path]:
    """my_launchpad.yaml and my_fworker.yaml of a worker on ``config``.

    Its env also names a broken external FEFF, ``feff_cmd_broken`` (a script that prints
    "bad counts" and exits 3), for the workflow that must fail through the whole ladder.
    """
    directory.mkdir(parents=True, exist_ok=True)
    db_file = config.write_db_json(directory / "db.json")
    launchpad_file = config.write_launchpad_yaml(directory / "my_launchpad.yaml")
    broken = directory / "broken_feff.sh"
    broken.write_text("#!/bin/sh\necho 'bad counts'\nexit 3\n")
    broken.chmod(0o755)
    fworker_file = directory / "my_fworker.yaml"
    env = {"db_file": str(db_file), "feff_cmd_broken": str(broken)}
    FWorker(name="test_worker", env=env).to_file(str(fworker_file))
    return launchpad_file, fworker_file


def start_worker(launchpad_file: Path, fworker_file: Path, directory: Path) -> subprocess.Popen:
    """``rlaunch rapidfire`` in its own directory and process group, output to a log."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "rlaunch.log").open("w") as log:
        return subprocess.Popen(
            [
                *(str(BIN / "rlaunch"), "-l", str(launchpad_file), "-w", str(fworker_file)),
                *("rapidfire", "--nlaunches", "0"),
            ],
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait(worker: subprocess.Popen, timeout_s: float = 300.0) -> None:
    assert worker.wait(timeout=timeout_s) == 0, f"rlaunch exited with {worker.returncode}"


def fw_states(launchpad: LaunchPad) -> dict[str, str]:
    """Firework state by task key."""
    return {fw["spec"]["task_key"]: fw["state"] for fw in launchpad.fireworks.find({})}


def completed_launches(launchpad: LaunchPad, fw_key: str) -> int:
    (fw,) = launchpad.fireworks.find({"spec.task_key": fw_key})
    return launchpad.launches.count_documents({"fw_id": fw["fw_id"], "state": "COMPLETED"})


@pytest.mark.slow
def test_two_workers_complete_every_workflow_once_and_failures_become_documents(
    db_config, launchpad, tmp_path
):
    maker = XesWorkflowMaker(preset="smoke")
    good = [
        maker.make(rock_salt(metal, a), f"test:{metal}O", metal)
        for metal, a in ROCK_SALT_OXIDES.items()
    ]
    disordered = rock_salt("Ni", 4.2)
    disordered.replace_species({"Ni": {"Ni": 0.5, "Mg": 0.5}})
    broken = maker.make(disordered, "test:Ni0.5Mg0.5O", "Ni")
    feff_fails = XesWorkflowMaker(preset="smoke", feff_cmd=">>feff_cmd_broken<<").make(
        rock_salt("Cu", 4.25), "test:CuO-broken-feff", "Cu"
    )
    for workflow in [*good, broken, feff_fails]:
        launchpad.add_wf(workflow)

    launchpad_file, fworker_file = worker_files(db_config, tmp_path / "config")
    workers = [start_worker(launchpad_file, fworker_file, tmp_path / f"w{n}") for n in (1, 2)]
    for worker in workers:
        wait(worker)

    states = fw_states(launchpad)
    good_keys = [workflow.metadata["task_key"] for workflow in good]
    assert {key: states[key] for key in good_keys} == dict.fromkeys(good_keys, "COMPLETED")
    launches = {key: completed_launches(launchpad, key) for key in good_keys}
    assert launches == dict.fromkeys(good_keys, 1)
    launch_ids = [launch["launch_id"] for launch in launchpad.launches.find({})]
    assert len(set(launch_ids)) == len(launch_ids) == len(good) + 2, sorted(launch_ids)
    assert (
        states["test:Ni0.5Mg0.5O:Ni:smoke"] == states["test:CuO-broken-feff:Cu:smoke"] == "FIZZLED"
    )
    hosts = {launch["fworker"]["name"] for launch in launchpad.launches.find({})}
    assert hosts == {"test_worker"}

    tasks = db_config.collection("tasks")
    assert tasks.count_documents({}) == len(good) + 2
    assert len(tasks.distinct("task_key")) == len(good) + 2
    for task in tasks.find({"state": "successful"}):
        assert task["preset"] == "smoke" and len(task["mu"]) == 3
        assert len(task["energies"]) == len(task["mu"][0]) > 5
        assert task["cpu_s"] > 0 and task["feff_version"].startswith("feff10")
        assert task["sams"] < 1e-3  # cubic rock salt: no anisotropy
    disorder_error = tasks.find_one({"record_key": "test:Ni0.5Mg0.5O:Ni"})["error"]
    assert disorder_error["reason"] == "disordered"
    assert "partially occupied" in disorder_error["message"]
    feff_task = tasks.find_one({"record_key": "test:CuO-broken-feff:Cu"})
    assert feff_task["state"] == "failed"
    assert len(feff_task["attempts"]) >= 1
    assert all(not attempt["ok"] for attempt in feff_task["attempts"])
    assert "bad counts" in feff_task["error"]["message"]


@pytest.mark.slow
def test_worker_killed_mid_feff_is_recovered_without_loss_or_duplicates(
    db_config, launchpad, tmp_path
):
    maker = XesWorkflowMaker(preset="smoke")
    for metal in ("Ni", "Co"):
        launchpad.add_wf(
            maker.make(rock_salt(metal, ROCK_SALT_OXIDES[metal]), f"kill:{metal}O", metal)
        )
    launchpad_file, fworker_file = worker_files(db_config, tmp_path / "config")

    victim = start_worker(launchpad_file, fworker_file, tmp_path / "victim")
    feff_dir = _wait_for_feff_directory(tmp_path / "victim", victim)
    time.sleep(1.0)  # FEFF is now running its stages
    os.killpg(victim.pid, signal.SIGKILL)  # the node dies: worker and its FEFF processes
    victim.wait()
    tasks = db_config.collection("tasks")
    assert feff_dir.exists() and tasks.count_documents({}) == 0
    assert "RUNNING" in fw_states(launchpad).values()

    time.sleep(2.0)
    lpad = subprocess.run(
        [str(BIN / "lpad"), "-l", str(launchpad_file), "detect_lostruns", "--time", "1", "--rerun"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "RUNNING" not in fw_states(launchpad).values(), lpad.stdout + lpad.stderr

    wait(start_worker(launchpad_file, fworker_file, tmp_path / "rescuer"))
    assert set(fw_states(launchpad).values()) == {"COMPLETED"}
    assert sorted(tasks.distinct("task_key")) == ["kill:CoO:Co:smoke", "kill:NiO:Ni:smoke"]
    assert tasks.count_documents({}) == 2
    assert tasks.count_documents({"state": "successful"}) == 2
    for key in ("kill:NiO:Ni:smoke", "kill:CoO:Co:smoke"):
        assert completed_launches(launchpad, key) == 1


def _wait_for_feff_directory(directory: Path, worker: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list(directory.glob("launcher_*/feff_*"))
        if found:
            return found[0]
        assert worker.poll() is None, (directory / "rlaunch.log").read_text()[-2000:]
        time.sleep(0.05)
    raise AssertionError("FEFF never started")
