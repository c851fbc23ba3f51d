"""The database layer: configuration files, the embedded server process, idempotent tasks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import free_port
from fireworks import LaunchPad

from vtc_fw.cli import main
from vtc_fw.db.config import DbConfig
from vtc_fw.db.embedded import EmbeddedServer, ServerStatus, server_answers
from vtc_fw.documents.task import TaskDocument, ensure_task_indexes, insert_task
from vtc_fw.errors import DatabaseServerError

REPO = Path(__file__).resolve().parents[1]


def test_shipped_launchpad_and_db_json_name_the_same_embedded_default():
    from_launchpad = DbConfig.from_file(REPO / "my_launchpad.yaml")
    from_db_json = DbConfig.from_file(REPO / "db.json")
    assert from_launchpad == from_db_json == DbConfig()
    assert from_launchpad.is_local_default
    fireworks_view = LaunchPad.from_file(str(REPO / "my_launchpad.yaml"))
    assert (fireworks_view.host, fireworks_view.port, fireworks_view.name) == (
        from_launchpad.host,
        from_launchpad.port,
        from_launchpad.database,
    )


def test_load_prefers_explicit_file_then_environment_then_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VTC_FW_DB_FILE", raising=False)
    assert DbConfig.load() == DbConfig()
    (tmp_path / "db.json").write_text(json.dumps({"host": "db.cluster", "database": "cwd"}))
    assert DbConfig.load().database == "cwd"
    elsewhere = DbConfig(host="mongo.example.org", port=27018, database="env").write_db_json(
        tmp_path / "env.json"
    )
    monkeypatch.setenv("VTC_FW_DB_FILE", str(elsewhere))
    assert DbConfig.load() == DbConfig(host="mongo.example.org", port=27018, database="env")
    assert not DbConfig.load().is_local_default
    explicit = DbConfig(database="explicit").write_launchpad_yaml(tmp_path / "lp.yaml")
    assert DbConfig.load(explicit).database == "explicit"


def test_atomate_db_json_with_credentials_and_uri_round_trips(tmp_path):
    settings = {
        "host": "db.cluster",
        "port": 27020,
        "database": "xes",
        "admin_user": "vtc",
        "admin_password": "secret",
        "authsource": "admin",
    }
    config = DbConfig.from_file(_write(tmp_path / "db.json", settings))
    assert (config.username, config.password, config.auth_source) == ("vtc", "secret", "admin")
    assert DbConfig.from_db_json(config.as_db_json()) == config
    uri_config = DbConfig(uri="mongodb+srv://vtc:pw@cluster.example.org", database="xes")
    launchpad_file = uri_config.write_launchpad_yaml(tmp_path / "lp.yaml")
    assert DbConfig.from_file(launchpad_file) == uri_config


def test_malformed_configuration_is_a_clear_error(tmp_path):
    broken = tmp_path / "db.json"
    broken.write_text("{not json")
    with pytest.raises(Exception, match="cannot read database configuration"):
        DbConfig.from_file(broken)
    with pytest.raises(Exception, match="cannot read"):
        DbConfig.from_file(tmp_path / "missing.json")


def test_embedded_server_lifecycle_pidfile_and_data_survive_restart(tmp_path):
    server = EmbeddedServer(home=tmp_path, port=free_port(), cache_size="32M")
    assert not server.status().running
    assert not server.stop()
    started = server.ensure_running()
    assert started.running and started.answering
    recorded = json.loads(server.pidfile.read_text())
    assert recorded["pid"] == started.pid and recorded["port"] == server.port
    config = DbConfig(host=server.host, port=server.port, database="lifecycle")
    client = config.client()
    client[config.database]["probe"].insert_one({"kept": True})
    client.close()
    assert server.ensure_running().pid == started.pid  # already running: nothing new started
    with pytest.raises(DatabaseServerError, match="already answers"):
        EmbeddedServer(home=tmp_path / "other", port=server.port).start()
    assert server.stop()
    assert not server.pidfile.exists()
    assert not server_answers(server.host, server.port)
    restarted = server.start()
    assert restarted.pid != started.pid
    client = config.client()
    assert client[config.database]["probe"].count_documents({"kept": True}) == 1
    client.close()
    server.stop()


def test_stale_pidfile_of_a_killed_server_is_ignored_and_replaced(tmp_path):
    server = EmbeddedServer(home=tmp_path, port=free_port(), cache_size="32M")
    killed = server.start()
    os.kill(killed.pid, signal.SIGKILL)
    os.waitpid(killed.pid, 0)  # reap it: this test process is its parent
    assert server.pidfile.exists()
    assert not server.status().running
    restarted = server.ensure_running()
    assert restarted.running and restarted.pid != killed.pid
    server.stop()


@pytest.fixture
def live_server(tmp_path) -> Iterator[tuple[EmbeddedServer, ServerStatus]]:
    """A started server and its status; killed at the end whatever the test did to it."""
    server = EmbeddedServer(home=tmp_path, port=free_port(), cache_size="32M")
    status = server.start()
    yield server, status
    with contextlib.suppress(OSError):  # gone already: nothing to do
        if str(server.server_dir).encode() in Path(f"/proc/{status.pid}/cmdline").read_bytes():
            os.kill(status.pid, signal.SIGCONT)
            os.kill(status.pid, signal.SIGKILL)
            os.waitpid(status.pid, 0)


def test_start_never_replaces_or_unrecords_a_live_server_that_is_slow_to_answer(
    live_server, tmp_path
):
    server, live = live_server
    os.kill(live.pid, signal.SIGSTOP)  # alive but silent, as a server still starting or busy
    try:
        impatient = EmbeddedServer(home=tmp_path, port=server.port, startup_timeout_s=1.0)
        with pytest.raises(DatabaseServerError, match="alive but did not answer") as refused:
            impatient.start()
        assert refused.value.reason == "server_timeout"
        assert json.loads(server.pidfile.read_text())["pid"] == live.pid
    finally:
        os.kill(live.pid, signal.SIGCONT)
    assert server.ensure_running().pid == live.pid
    server.pidfile.unlink()  # what the old start did: the directory still belongs to the server
    with pytest.raises(DatabaseServerError, match="already answers"):
        server.start()
    os.kill(live.pid, signal.SIGSTOP)
    try:
        with pytest.raises(DatabaseServerError) as refused:
            server.start()
        assert refused.value.reason in {"port_in_use", "server_running"}
    finally:
        os.kill(live.pid, signal.SIGCONT)
    assert server_answers(server.host, server.port)


def test_a_live_server_without_pidfile_keeps_its_directory(live_server, tmp_path):
    server, live = live_server
    server.pidfile.unlink()
    # Same directory, another loopback address: no pidfile and no answer at that address,
    # so only the lock the live server holds on its directory stops a second server.
    other_address = EmbeddedServer(home=tmp_path, host="127.0.0.2", port=server.port)
    with pytest.raises(DatabaseServerError, match="live server holds") as refused:
        other_address.start()
    assert refused.value.reason == "server_running"
    assert not server.pidfile.exists() and server_answers(server.host, server.port)
    os.kill(live.pid, signal.SIGTERM)
    os.waitpid(live.pid, 0)
    restarted = server.start()  # the lock died with the server
    assert restarted.running and restarted.pid != live.pid
    server.stop()


def test_local_default_starts_the_embedded_server_when_nothing_answers(tmp_path, monkeypatch):
    silent = DbConfig(port=free_port(), embedded_home=tmp_path)
    monkeypatch.setattr("vtc_fw.db.config.DEFAULT_PORT", silent.port)
    assert silent.is_local_default
    client = silent.client()
    assert client.admin.command("ping")["ok"] == 1.0
    client.close()
    assert silent.embedded_server().stop()


def test_local_default_uses_a_server_that_already_answers(tmp_path, monkeypatch, mongo_server):
    if mongo_server.uri is not None:
        pytest.skip("the session server is a configured URI, not a local port")
    monkeypatch.setattr("vtc_fw.db.config.DEFAULT_PORT", mongo_server.port)
    answering = DbConfig(port=mongo_server.port, embedded_home=tmp_path)
    answering.ensure_server()
    assert not answering.embedded_server().pidfile.exists()


def _failed(record_key: str, message: str) -> TaskDocument:
    error = {"type": "FeffError", "reason": "feff_failed", "message": message}
    return TaskDocument.from_failure(record_key, "smoke", error)


def test_task_key_is_unique_and_reinsertion_replaces(db_config):
    tasks = db_config.collection("tasks")
    ensure_task_indexes(tasks)
    assert insert_task(tasks, _failed("oqmd-icsd:NiO:Ni", "first")) == "inserted"
    assert insert_task(tasks, _failed("oqmd-icsd:NiO:Ni", "second")) == "replaced"
    (stored,) = tasks.find({"record_key": "oqmd-icsd:NiO:Ni"})
    assert stored["task_key"] == "oqmd-icsd:NiO:Ni:smoke"
    assert stored["error"]["message"] == "second"
    with pytest.raises(Exception, match="duplicate key"):
        tasks.insert_one({"task_key": "oqmd-icsd:NiO:Ni:smoke"})


def test_a_late_failure_never_replaces_a_successful_task(db_config):
    tasks = db_config.collection("tasks")
    ensure_task_indexes(tasks)
    successful = _failed("oqmd-icsd:NiO:Ni", "placeholder").as_mongo() | {
        "state": "successful",
        "error": None,
    }
    assert insert_task(tasks, successful) == "inserted"
    assert insert_task(tasks, _failed("oqmd-icsd:NiO:Ni", "late")) == "kept_successful"
    assert tasks.find_one({})["state"] == "successful"
    assert tasks.count_documents({}) == 1


def test_concurrent_insertions_of_one_key_leave_one_document(db_config):
    tasks = db_config.collection("tasks")
    ensure_task_indexes(tasks)
    documents = [_failed("file:CoO:Co", f"worker {n}") for n in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda doc: insert_task(tasks, doc), documents))
    assert tasks.count_documents({}) == 1
    assert outcomes.count("inserted") == 1


def test_maggma_and_gridfs_stores_reach_the_configured_database(db_config):
    tasks = db_config.store("tasks")
    tasks.connect()
    assert tasks.key == "task_key"
    tasks.update([_failed("file:Fe2O3:Fe", "x").as_mongo()])
    assert tasks.query_one({"record_key": "file:Fe2O3:Fe"})["state"] == "failed"
    tasks.close()
    blobs = db_config.gridfs_store()
    blobs.connect()
    blobs.update([{"model_id": "m1", "payload": "c29tZSBieXRlcw=="}])
    assert blobs.query_one({"model_id": "m1"})["payload"] == "c29tZSBieXRlcw=="
    blobs.close()


def _write(path: Path, settings: dict) -> Path:
    path.write_text(json.dumps(settings))
    return path


def test_cli_db_start_status_stop_use_vtc_fw_home(tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setattr("vtc_fw.db.config.DEFAULT_PORT", port)
    monkeypatch.setenv("VTC_FW_HOME", str(tmp_path / "home"))
    db_file = str(DbConfig(port=port).write_db_json(tmp_path / "db.json"))
    runner = CliRunner()
    started = runner.invoke(main, ["db", "start", "--db-file", db_file])
    assert started.exit_code == 0, started.output
    assert f"answering at 127.0.0.1:{port}" in started.output
    assert (tmp_path / "home" / f"secantus-{port}" / "data").is_dir()
    status = json.loads(
        runner.invoke(main, ["db", "status", "--json", "--db-file", db_file]).output
    )
    assert status["running"] and status["answering"]
    stopped = runner.invoke(main, ["db", "stop", "--db-file", db_file])
    assert "stopped" in stopped.output
    remote = str(DbConfig(host="db.example.org").write_db_json(tmp_path / "remote.json"))
    refused = runner.invoke(main, ["db", "start", "--db-file", remote])
    assert refused.exit_code != 0 and "not the embedded default" in refused.output
    assert '"embedded_home"' in refused.output


def test_db_json_with_embedded_home_makes_a_second_embedded_server(tmp_path):
    db_file = tmp_path / "db.json"
    settings = {"host": "127.0.0.1", "port": free_port(), "embedded_home": str(tmp_path / "h")}
    db_file.write_text(json.dumps(settings))
    config = DbConfig.from_file(db_file)
    assert config.is_local_default and config.embedded_home == tmp_path / "h"
    assert DbConfig.from_db_json(config.as_db_json()) == config
    runner = CliRunner()
    started = runner.invoke(main, ["db", "start", "--db-file", str(db_file)])
    assert started.exit_code == 0, started.output
    assert f"127.0.0.1:{settings['port']}" in started.output
    assert (tmp_path / "h" / f"secantus-{settings['port']}").is_dir()
    stopped = runner.invoke(main, ["db", "stop", "--db-file", str(db_file)])
    assert "stopped" in stopped.output
