"""Shared fixtures: a private MongoDB-protocol server for the whole test session.

The session starts its own ``secantusd-py`` (through the same :class:`EmbeddedServer` code
that production uses) on a free port in a temporary directory; with
``VTC_FW_TEST_MONGO_URI`` set, the tests use that server instead (e.g. a real MongoDB in CI).
Every test that asks for ``db_config`` gets a fresh database of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pandas as pd
import pytest
from fireworks import LaunchPad
from oqmd_table import band_gap_table

from vtc_fw.db.config import DbConfig
from vtc_fw.db.embedded import EmbeddedServer, free_port


@pytest.fixture(scope="session", autouse=True)
def result_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Kept FEFF results of the session (and of its workers) go to a temporary directory.

    Without it, results that a test computes but never stores would stay in
    ``~/.vtc_fw/results``, and a later session would resume from them instead of running FEFF.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VTC_FW_RESULT_DIR", str(tmp_path_factory.mktemp("kept_results")))
        yield


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbConfig]:
    """The session's server, as a DbConfig without a database of its own."""
    uri = os.environ.get("VTC_FW_TEST_MONGO_URI")
    if uri:
        yield DbConfig(uri=uri)
        return
    home = tmp_path_factory.mktemp("vtc_fw_home")
    server = EmbeddedServer(home=home, port=free_port(), cache_size="64M")
    server.start()
    try:
        yield DbConfig(host=server.host, port=server.port, embedded_home=home)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongo_uri(mongo_server: DbConfig) -> str:
    """Connection string of the session's server."""
    return mongo_server.uri or f"mongodb://{mongo_server.host}:{mongo_server.port}"


@pytest.fixture
def db_config(mongo_server: DbConfig) -> Iterator[DbConfig]:
    """A DbConfig on a fresh, uniquely named database, dropped after the test."""
    config = mongo_server.with_database(f"vtc_test_{uuid.uuid4().hex[:12]}")
    yield config
    client = config.client()
    client.drop_database(config.database)
    client.close()


@pytest.fixture
def launchpad(db_config: DbConfig) -> Iterator[LaunchPad]:
    """A reset FireWorks LaunchPad on the test's database (its client closed after the test)."""
    launchpad = db_config.launchpad()
    launchpad.reset("", require_password=False)
    yield launchpad
    launchpad.connection.close()


@pytest.fixture(scope="session")
def table() -> pd.DataFrame:
    """Real features of the first 150 OQMD-ICSD structures; target = band gap (not SAMS).

    Built once per session (test_ml and test_model_comparison share it): tests copy it
    before changing it.
    """
    return band_gap_table()
