"""The command line's one error policy, walked over every command (no database needed)."""

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from vtc_fw.cli import COMMANDS, main
from vtc_fw.cli.options import db_config_option


def _commands(group: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every leaf command's name path that takes ``--db-file``."""
    if isinstance(group, click.Group):
        for name, command in group.commands.items():
            yield from _commands(command, (*path, name))
    elif any(param.name == "config" for param in group.params):
        yield path


DB_COMMANDS = sorted(_commands(main))


def test_every_database_command_is_walked():
    names = {" ".join(path) for path in DB_COMMANDS}
    expected = {"build", "screen", "report", "suggest", "submit", "export", "import", "run"}
    assert expected | {"db start", "db stop", "db status"} <= names


def test_commands_are_registered_explicitly():
    assert set(main.commands.values()) == set(COMMANDS)
    assert callable(db_config_option)


@pytest.fixture(params=["missing", "not_json", "not_a_mapping", "a_directory"])
def bad_db_file(request, tmp_path: Path) -> Path:
    path = tmp_path / "db.json"
    if request.param == "not_json":
        path.write_text("{bad")
    elif request.param == "not_a_mapping":
        path.write_text("[1, 2]")
    elif request.param == "a_directory":
        path.mkdir()
    return path


@pytest.mark.parametrize("command", DB_COMMANDS, ids=" ".join)
def test_a_bad_db_file_is_one_line_and_no_traceback(command, bad_db_file):
    result = CliRunner().invoke(main, [*command, "--db-file", str(bad_db_file)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "--db-file" in errors[0] and str(bad_db_file) in errors[0]
    assert "Traceback" not in result.output
    assert result.exc_info is None or result.exc_info[0] is SystemExit


def test_errors_inside_a_command_are_one_line(db_config, tmp_path):
    """A file that is not gzip and an unreachable database: one ``Error:`` line, exit 1."""
    db_file = db_config.write_db_json(tmp_path / "db.json")
    not_gzip = tmp_path / "tasks.jsonl.gz"
    not_gzip.write_text("plain text\n")
    result = CliRunner().invoke(main, ["import", str(not_gzip), "--db-file", str(db_file)])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1].startswith("Error:")
    assert "Traceback" not in result.output


def test_defaults_come_from_the_one_settings_object(monkeypatch):
    from vtc_fw.app.main_job import MainJobSettings
    from vtc_fw.cli.build import build_command
    from vtc_fw.cli.run import run_command

    monkeypatch.setenv("VTC_FW_N_ITER", "7")
    monkeypatch.setenv("VTC_FW_PRESET", "fast")
    monkeypatch.setenv("VTC_FW_HOME", "/tmp/elsewhere")
    build = build_command.make_context("build", []).params
    run = run_command.make_context("run", ["--seed", "3"]).params
    assert (build["n_iter"], build["preset"], run["n_iter"], run["seed"]) == (7, "fast", 7, 3)
    settings = MainJobSettings()
    assert (settings.n_iter, settings.preset) == (7, "fast")
    assert settings.run_dir == Path("/tmp/elsewhere/run")


def test_the_model_configuration_defaults_to_the_best_validated_and_is_overridable(monkeypatch):
    from vtc_fw.app.main_job import MainJobSettings
    from vtc_fw.cli.build import build_command
    from vtc_fw.cli.run import run_command

    build = build_command.make_context("build", []).params
    assert (build["feature_set"], build["target"]) == ("crystal", "sams")
    assert (MainJobSettings().feature_set, MainJobSettings().target) == ("crystal", "sams")
    monkeypatch.setenv("VTC_FW_FEATURE_SET", "paper")
    monkeypatch.setenv("VTC_FW_TARGET", "a_inv")
    build = build_command.make_context("build", []).params
    run = run_command.make_context("run", ["--target", "sams_max"]).params
    assert (build["feature_set"], build["target"]) == ("paper", "a_inv")
    assert (run["feature_set"], run["target"]) == ("paper", "sams_max")
    assert (MainJobSettings().feature_set, MainJobSettings().target) == ("paper", "a_inv")
    refused = CliRunner().invoke(main, ["build", "--feature-set", "soap"])
    assert refused.exit_code != 0 and "'soap' is not one of 'paper', 'crystal'" in refused.output


def test_the_search_space_setting_reaches_the_train_builder_of_build_and_run(
    monkeypatch, db_config, tmp_path
):
    from vtc_fw.app import main_job
    from vtc_fw.app.main_job import MainJobSettings, build_and_report
    from vtc_fw.app.timing import StepTimes
    from vtc_fw.cli import build

    assert MainJobSettings().search_space is None
    monkeypatch.setenv("VTC_FW_SEARCH_SPACE", "extra_trees")
    assert MainJobSettings().search_space == "extra_trees"
    built = []
    monkeypatch.setattr(build, "run_builders", lambda builders, **_: built.extend(builders) or {})
    db_file = db_config.write_db_json(tmp_path / "db.json")
    outcome = CliRunner().invoke(main, ["build", "--db-file", str(db_file), "--json"])
    assert outcome.exit_code == 0, outcome.output
    (train,) = [b for b in built if type(b).__name__ == "TrainBuilder"]
    assert train._parameters()["search_space"] == "extra_trees"
    assert type(train).from_dict(train.as_dict()).search_space == "extra_trees"  # mrun

    def capture(config, **options):
        raise LookupError(options)

    monkeypatch.setattr(main_job, "nightly_builders", capture)
    with pytest.raises(LookupError) as captured:
        build_and_report(db_config, MainJobSettings(), print, StepTimes())
    assert captured.value.args[0]["search_space"] == "extra_trees"
    monkeypatch.setenv("VTC_FW_SEARCH_SPACE", "deep")
    refused = CliRunner().invoke(main, ["build", "--db-file", str(db_file)])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert refused.output.splitlines()[-1].startswith(
        "Error: invalid setting VTC_FW_SEARCH_SPACE='deep': Input should be 'paper', 'wide'"
    )


def test_cheap_labels_reach_the_builders_of_build_and_run(monkeypatch, db_config, tmp_path):
    from vtc_fw.app import main_job
    from vtc_fw.app.main_job import MainJobSettings, build_and_report
    from vtc_fw.app.timing import StepTimes
    from vtc_fw.cli import build
    from vtc_fw.cli.run import run_command

    assert build.build_command.make_context("build", []).params["cheap_labels"] is None
    assert MainJobSettings().cheap_labels is None
    monkeypatch.setenv("VTC_FW_CHEAP_LABELS", "screen")
    assert build.build_command.make_context("build", []).params["cheap_labels"] == "screen"
    assert run_command.make_context("run", []).params["cheap_labels"] == "screen"
    assert MainJobSettings().cheap_labels == "screen"
    monkeypatch.delenv("VTC_FW_CHEAP_LABELS")
    built = []
    monkeypatch.setattr(build, "run_builders", lambda builders, **_: built.extend(builders) or {})
    db_file = db_config.write_db_json(tmp_path / "db.json")
    options = ["--cheap-labels", "screen", "--preset", "paper", "--db-file", str(db_file)]
    outcome = CliRunner().invoke(main, ["build", *options, "--json"])
    assert outcome.exit_code == 0, outcome.output
    by_name = {type(builder).__name__: builder for builder in built}
    xes = [(b.preset, b.xes.collection_name) for b in built if type(b).__name__ == "XesBuilder"]
    assert xes == [("paper", "xes"), ("screen", "xes_screen")]  # one preset per collection
    train, predict = by_name["TrainBuilder"], by_name["PredictionBuilder"]
    assert (train.preset, train.cheap_preset, predict.cheap_preset) == ("paper", "screen", "screen")
    assert train.cheap_xes.collection_name == "xes_screen"
    for builder in built:  # mrun serializes them
        assert type(builder).from_dict(builder.as_dict()).as_dict() == builder.as_dict()

    class Captured(Exception):
        pass

    def capture(config, **options):
        raise Captured(options)

    monkeypatch.setattr(main_job, "nightly_builders", capture)
    with pytest.raises(Captured) as captured:
        build_and_report(db_config, MainJobSettings(cheap_labels="screen"), print, StepTimes())
    assert captured.value.args[0]["cheap_labels"] == "screen"
