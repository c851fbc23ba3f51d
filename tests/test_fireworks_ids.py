"""FireWorks id counters under concurrency, on the session's server (the embedded secantusdb
unless ``VTC_FW_TEST_MONGO_URI`` names a real MongoDB).

secantusdb 0.7.0b3 returns a stale pre-image from ``find_one_and_update``, which FireWorks'
own id draws read: concurrent clients got duplicate launch ids, and CI once saw two workers
share one. ``benchmarks/id_counter_race.py`` measures the server side; these tests check that
vtc-fw's draws are unique under contention and that a plain ``rlaunch`` process uses them
before it draws the id of the Firework it checked out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fireworks import LaunchPad
from pymatgen.core import Lattice, Structure

from vtc_fw.db.fireworks_ids import draw_ids
from vtc_fw.workflow.maker import XesWorkflowMaker

DRAWS = """
import json, sys
from vtc_fw.db.config import DbConfig
launchpad = DbConfig.from_file(sys.argv[1]).launchpad(strm_lvl="ERROR")
print(json.dumps([launchpad.get_new_launch_id() for _ in range(int(sys.argv[2]))]))
"""

PLAIN_CHECKOUT = """
import json, sys
from fireworks import FWorker, LaunchPad
from pymongo import ReturnDocument

class CounterSpy:
    '''The id-counter collection, recording how each draw asks for its document.'''
    def __init__(self, collection):
        self.collection, self.draws = collection, []
    def find_one_and_update(self, *args, **kwargs):
        after = kwargs.get("return_document", ReturnDocument.BEFORE) == ReturnDocument.AFTER
        self.draws.append("after" if after else "before")
        return self.collection.find_one_and_update(*args, **kwargs)
    def __getattr__(self, name):
        return getattr(self.collection, name)

launchpad = LaunchPad.from_file(sys.argv[1])
launchpad.fw_id_assigner = spy = CounterSpy(launchpad.fw_id_assigner)
vtc_fw_loaded_before = "vtc_fw" in sys.modules
firework, launch_id = launchpad.checkout_fw(FWorker(), sys.argv[2])
print(json.dumps({"before": vtc_fw_loaded_before, "draws": spy.draws, "launch_id": launch_id}))
"""


def test_concurrent_launch_id_draws_are_unique(db_config, launchpad, tmp_path):
    db_file = db_config.write_db_json(tmp_path / "db.json")
    n_processes, n_draws = 3, 200
    drawers = [
        subprocess.Popen(
            [sys.executable, "-c", DRAWS, str(db_file), str(n_draws)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(n_processes)
    ]
    ids = [launch_id for drawer in drawers for launch_id in json.loads(drawer.communicate()[0])]
    assert all(drawer.returncode == 0 for drawer in drawers)
    assert len(ids) == n_processes * n_draws
    duplicates = len(ids) - len(set(ids))
    assert duplicates == 0, f"{duplicates} duplicate launch ids"
    assert sorted(ids) == list(range(1, len(ids) + 1))


def test_draws_return_the_first_of_a_block_and_explain_a_missing_counter(launchpad):
    assert draw_ids(launchpad.fw_id_assigner, "next_fw_id", 5) == 1
    assert launchpad.get_new_fw_id() == 6
    launchpad.fw_id_assigner.delete_many({})
    try:
        launchpad.get_new_launch_id()
    except ValueError as error:
        assert "lpad reset" in str(error)
    else:
        raise AssertionError("a missing counter must be an error")


def test_a_plain_rlaunch_process_draws_the_launch_id_atomically(db_config, launchpad, tmp_path):
    rock_salt = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.17), ["Ni", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    ).get_primitive_structure()
    launchpad.add_wf(XesWorkflowMaker(preset="smoke").make(rock_salt, "ids:NiO", "Ni"))
    launchpad_file = db_config.write_launchpad_yaml(tmp_path / "my_launchpad.yaml")

    checkout = subprocess.run(
        [sys.executable, "-c", PLAIN_CHECKOUT, str(launchpad_file), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(checkout.stdout.splitlines()[-1])
    assert seen == {"before": False, "draws": ["after"], "launch_id": 1}
    assert LaunchPad.get_new_launch_id.__module__ == "vtc_fw.db.fireworks_ids"
    (launch,) = launchpad.launches.find({})
    assert launch["launch_id"] == 1 and launch["state"] == "RUNNING"
    assert Path(launch["launch_dir"]) == tmp_path
