"""A lease-based lock held in the database, so that two builds never run at once.

The lock is one document of the ``locks`` collection whose ``_id`` is the lock's name: the
server's unique ``_id`` index makes taking it atomic on MongoDB and on the embedded server
alike (one ``insert_one`` wins, the others get a duplicate-key error). The document says who
holds it (command, host, pid) and until when: a holder renews its lease from a background
thread, so a live build keeps it however long it runs, and a build that crashed (or was
killed) stops renewing and its lock can be taken over once the lease has run out.

Lease times come from each client's clock; keep the lease (default 5 minutes) well above the
clock skew between the machines that build.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from vtc_fw.errors import LockHeldError

if TYPE_CHECKING:
    from vtc_fw.db.config import DbConfig

LOCK_COLLECTION = "locks"
BUILD_LOCK = "build"
"""The lock every build of the derived collections holds (``vtc-fw build``, ``vtc-fw run``,
``mrun builders/nightly.py``)."""
LEASE_S = 300.0
"""How long a lock outlives its holder's last renewal, s."""
POLL_S = 2.0
"""How often a waiting build asks again, s."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock, as its document says."""

    command: str
    host: str
    pid: int
    acquired_at: datetime
    expires_at: datetime

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> LockHolder:
        """The holder named by a ``locks`` document."""
        return cls(
            command=document.get("command", "?"),
            host=document.get("host", "?"),
            pid=int(document.get("pid", 0)),
            acquired_at=_aware(document["acquired_at"]),
            expires_at=_aware(document["expires_at"]),
        )

    def describe(self) -> str:
        """One line: ``vtc-fw build (pid 12, host node1, since ..., lease until ...)``."""
        return (
            f"{self.command} (pid {self.pid} on {self.host}, since "
            f"{self.acquired_at:%Y-%m-%d %H:%M:%S} UTC, lease until {self.expires_at:%H:%M:%S} UTC)"
        )


class DatabaseLock:
    """A named lock in a ``locks`` collection, renewed while held.

    Args:
        locks: The ``locks`` collection.
        name: The lock's name (its document's ``_id``).
        command: What holds it, shown to whoever finds it taken.
        lease_s: Seconds the lock outlives its last renewal.
    """

    def __init__(
        self, locks: Collection, name: str, command: str, lease_s: float = LEASE_S
    ) -> None:
        self.locks = locks
        self.name = name
        self.command = command
        self.lease_s = lease_s
        self.owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def try_acquire(self) -> LockHolder | None:
        """Take the lock if it is free or expired; None when taken, else its live holder."""
        while True:
            try:
                self.locks.insert_one(self._document())
                return None
            except DuplicateKeyError:
                document = self.locks.find_one({"_id": self.name})
            if document is None:  # released between the insert and the read
                continue
            holder = LockHolder.from_document(document)
            if holder.expires_at > datetime.now(UTC):
                return holder
            # expired: delete exactly that stale document (another taker may be quicker)
            self.locks.delete_one({"_id": self.name, "owner": document.get("owner")})
            logger.warning(f"took over the expired {self.name!r} lock of {holder.describe()}")

    def acquire(self, wait_s: float | None = 0.0, poll_s: float = POLL_S) -> None:
        """Take the lock, waiting up to ``wait_s`` seconds (None: as long as it takes).

        Raises:
            LockHeldError: Someone else still holds it after ``wait_s``.
        """
        deadline = None if wait_s is None else time.monotonic() + wait_s
        announced = False
        while (holder := self.try_acquire()) is not None:
            if deadline is not None and time.monotonic() >= deadline:
                raise LockHeldError(f"the {self.name!r} lock is held by {holder.describe()}")
            if not announced:
                logger.warning(f"waiting for the {self.name!r} lock of {holder.describe()}")
                announced = True
            time.sleep(poll_s if deadline is None else min(poll_s, deadline - time.monotonic()))
        self._start_renewing()

    def release(self) -> None:
        """Stop renewing and delete the lock document if this holder still owns it."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        self.locks.delete_one({"_id": self.name, "owner": self.owner})

    def _document(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "_id": self.name,
            "owner": self.owner,
            "command": self.command,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": now,
            "expires_at": now + timedelta(seconds=self.lease_s),
        }

    def _start_renewing(self) -> None:
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name=f"lock-{self.name}", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        """Extend the lease every fifth of it until released; warn once if it was lost."""
        while not self._stop.wait(self.lease_s / 5):
            expires = datetime.now(UTC) + timedelta(seconds=self.lease_s)
            result = self.locks.update_one(
                {"_id": self.name, "owner": self.owner}, {"$set": {"expires_at": expires}}
            )
            if result.matched_count == 0:
                logger.error(f"lost the {self.name!r} lock: another process took it over")
                return


@contextmanager
def holding_build_lock(
    config: DbConfig, command: str, wait_s: float | None = 0.0, lease_s: float = LEASE_S
) -> Iterator[DatabaseLock]:
    """Hold the database's build lock for the ``with`` block; always released.

    Args:
        config: The database.
        command: What builds, shown to a build that finds the lock taken.
        wait_s: Seconds to wait for a live holder (None: as long as it takes).
        lease_s: Seconds the lock outlives this process's last renewal.

    Raises:
        LockHeldError: Another live build still holds it after ``wait_s``.
    """
    client = config.client()
    lock = DatabaseLock(config.collection(LOCK_COLLECTION, client), BUILD_LOCK, command, lease_s)
    try:
        lock.acquire(wait_s)
        try:
            yield lock
        finally:
            lock.release()
    finally:
        client.close()


def hold_build_lock_until_exit(config: DbConfig, command: str) -> DatabaseLock:
    """Take the build lock now (no waiting) and release it when the process exits.

    For scripts whose builders a runner executes after the script ends, such as
    ``mrun builders/nightly.py``.

    Raises:
        LockHeldError: Another live build holds it.
    """
    lock = DatabaseLock(config.collection(LOCK_COLLECTION), BUILD_LOCK, command)
    lock.acquire(0.0)
    atexit.register(lock.release)
    return lock


def _aware(moment: datetime) -> datetime:
    """MongoDB returns naive UTC datetimes."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
