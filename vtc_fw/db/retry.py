"""Retrying an idempotent database operation while the server is unreachable.

A worker that finished hours of FEFF must not lose the result to a database restart: it
retries with exponential backoff (1 s, doubling, at most :data:`MAX_WAIT_S` between tries) for
a bounded time, then fails with one line that says what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from pymongo.errors import ConnectionFailure

from vtc_fw.errors import DatabaseServerError, DatabaseUnavailableError

T = TypeVar("T")

FIRST_WAIT_S = 1.0
"""Wait before the second try, s; each further wait doubles."""
MAX_WAIT_S = 60.0
"""Longest wait between two tries, s."""
UNREACHABLE = (ConnectionFailure, DatabaseServerError)
"""Failures that mean "the database is not there right now": pymongo's connection failures
(server selection timeouts, lost connections) and an embedded server that cannot start."""


def retry_while_unreachable(
    operation: Callable[[], T],
    retry_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``operation``, trying again while the database is unreachable, for ``retry_s``.

    Args:
        operation: An idempotent database operation (it may have half happened before a
            connection broke).
        retry_s: How long to keep trying after the first failure, s (0: try once).
        sleep: The wait between tries (tests pass a recorder).

    Returns:
        What ``operation`` returned.

    Raises:
        DatabaseUnavailableError: Still unreachable after ``retry_s``; a one-line message
            naming the last failure.
    """
    deadline = time.monotonic() + retry_s
    wait_s = FIRST_WAIT_S
    tries = 0
    while True:
        tries += 1
        try:
            return operation()
        except UNREACHABLE as error:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DatabaseUnavailableError(
                    f"the database did not answer in {tries} tries over {retry_s:.0f} s "
                    f"({describe_unreachable(error)})"
                ) from error
            sleep(min(wait_s, remaining))
            wait_s = min(2 * wait_s, MAX_WAIT_S)


def describe_unreachable(error: BaseException, limit: int = 160) -> str:
    """An unreachable-database error in one short line: its class and first line.

    pymongo's messages run to many lines (the whole topology description).
    """
    first = (str(error).strip().splitlines() or [""])[0]
    first = first.split(" (configured timeouts")[0]  # pymongo's settings, then its topology
    line = first if len(first) <= limit else first[: limit - 1] + "…"
    return f"{type(error).__name__}: {line}"
