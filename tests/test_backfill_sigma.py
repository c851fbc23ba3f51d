"""Records computed before σ are queued again to gain it (issue 19, item 5).

Input: recorded real "smoke" task documents of our own runs without σ and their structures
(tests/data/builders_recorded.json.gz, see tests/data/make_builders_recorded.py).
"""

from click.testing import CliRunner
from test_builders import store_recorded

from vtc_fw.cli import main
from vtc_fw.workflow.maker import XesWorkflowMaker
from vtc_fw.workflow.submission import resubmit_without_sigma


def test_tasks_without_sigma_are_queued_once_with_the_sigma_route(db_config, launchpad):
    store_recorded(db_config)
    without = db_config.collection("tasks").count_documents(
        {"state": "successful", "preset": "smoke", "sigma": None}
    )
    assert without > 2
    first = resubmit_without_sigma(db_config, XesWorkflowMaker(preset="smoke"), limit=2)
    assert len(first) == 2 and all(fw_id is not None for fw_id in first.values())
    again = resubmit_without_sigma(db_config, XesWorkflowMaker(preset="smoke"), limit=2)
    assert again == dict.fromkeys(first)  # already pending: nothing twice
    for firework in launchpad.fireworks.find({}):
        (run, _insert) = firework["spec"]["_tasks"]
        assert run["route"] == "sigma" and run["preset"] == "smoke"


def test_cli_filters_by_element(db_config, launchpad, tmp_path):
    store_recorded(db_config)
    db_file = db_config.write_db_json(tmp_path / "db.json")
    result = CliRunner().invoke(
        main, ["backfill-sigma", "--preset", "smoke", "--elements", "Co", "--db-file", str(db_file)]
    )
    assert result.exit_code == 0, result.output
    elements = {fw["spec"]["element"] for fw in launchpad.fireworks.find({})}
    assert elements == {"Co"} and "queued for σ" in result.output
