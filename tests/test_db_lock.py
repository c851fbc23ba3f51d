"""The database lock that keeps builds from racing: exclusive, renewed, taken over once expired."""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from vtc_fw.db.lock import (
    BUILD_LOCK,
    LOCK_COLLECTION,
    DatabaseLock,
    holding_build_lock,
)
from vtc_fw.errors import LockHeldError


def _lock(db_config, command: str = "test build", lease_s: float = 60.0) -> DatabaseLock:
    return DatabaseLock(db_config.collection(LOCK_COLLECTION), BUILD_LOCK, command, lease_s)


def _crashed_build(db_config, expires_in_s: float) -> None:
    """The lock document a build on another node left when it was killed."""
    now = datetime.now(UTC)
    db_config.collection(LOCK_COLLECTION).insert_one(
        {
            "_id": BUILD_LOCK,
            "owner": "crashed",
            "command": "vtc-fw build",
            "host": "node17",
            "pid": 4242,
            "acquired_at": now - timedelta(hours=1),
            "expires_at": now + timedelta(seconds=expires_in_s),
        }
    )


def test_one_holder_at_a_time_and_the_next_one_after_release(db_config):
    first, second = _lock(db_config, "vtc-fw build"), _lock(db_config)
    first.acquire()
    holder = second.try_acquire()
    assert holder is not None
    assert (holder.command, holder.host, holder.pid) == (
        "vtc-fw build",
        socket.gethostname(),
        os.getpid(),
    )
    first.release()
    assert second.try_acquire() is None
    second.release()
    assert db_config.collection(LOCK_COLLECTION).count_documents({}) == 0


def test_of_many_simultaneous_takers_exactly_one_wins(db_config):
    locks = [_lock(db_config) for _ in range(8)]
    start = threading.Barrier(len(locks))
    outcomes: list[bool] = []

    def take(lock: DatabaseLock) -> None:
        start.wait()
        outcomes.append(lock.try_acquire() is None)

    threads = [threading.Thread(target=take, args=(lock,)) for lock in locks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 7 + [True]


def test_a_live_holder_is_named_and_waited_for_only_as_long_as_asked(db_config):
    _crashed_build(db_config, expires_in_s=60)
    started = time.monotonic()
    with pytest.raises(LockHeldError, match=r"vtc-fw build \(pid 4242 on node17"):
        _lock(db_config).acquire(wait_s=1.0, poll_s=0.2)
    assert 1.0 <= time.monotonic() - started < 10


def test_an_expired_lock_of_a_crashed_build_is_taken_over(db_config):
    _crashed_build(db_config, expires_in_s=-1)
    with holding_build_lock(db_config, "vtc-fw build", wait_s=0):
        document = db_config.collection(LOCK_COLLECTION).find_one({"_id": BUILD_LOCK})
        assert (document["pid"], document["host"]) == (os.getpid(), socket.gethostname())
    assert db_config.collection(LOCK_COLLECTION).count_documents({}) == 0


def test_a_waiting_build_gets_the_lock_when_the_holder_s_lease_runs_out(db_config):
    _crashed_build(db_config, expires_in_s=1)
    with holding_build_lock(db_config, "vtc-fw run", wait_s=30):
        document = db_config.collection(LOCK_COLLECTION).find_one({"_id": BUILD_LOCK})
        assert document["command"] == "vtc-fw run"


def test_a_live_holder_renews_its_lease_past_the_first_one(db_config):
    with holding_build_lock(db_config, "vtc-fw build", lease_s=1.0):
        time.sleep(2.5)  # more than twice the lease
        assert _lock(db_config).try_acquire() is not None
    assert _lock(db_config).try_acquire() is None
