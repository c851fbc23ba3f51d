"""``python -m vtc_fw.workflow.worker``: ``rlaunch`` that stops in one line without a database.

``rlaunch`` asks the database for work between launches and records each launch's end; when
the server has gone away it dies with a pymongo traceback. This entry point takes the same
arguments (``-l my_launchpad.yaml -w my_fworker.yaml rapidfire ...``) and runs the same code,
but a database that does not answer ends it with one line on stderr and exit status
:data:`EXIT_DATABASE_UNAVAILABLE`, so the queue (or ``vtc-fw run``) simply starts a worker
again later. A Firework the worker was running stays RUNNING; ``lpad detect_lostruns
--rerun`` puts it back, and its rerun stores a kept FEFF result without computing it again
(:mod:`vtc_fw.db.kept_results`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from fireworks.scripts.rlaunch_run import rlaunch

from vtc_fw.db.retry import UNREACHABLE, describe_unreachable

EXIT_DATABASE_UNAVAILABLE = 75
"""Exit status when the database does not answer (BSD ``EX_TEMPFAIL``: try again later)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rlaunch`` with ``argv``; a database that does not answer ends it in one line.

    Returns:
        rlaunch's exit status, or :data:`EXIT_DATABASE_UNAVAILABLE`.
    """
    try:
        return rlaunch(argv) or 0
    except UNREACHABLE as error:
        print(
            f"rlaunch stopped: {describe_unreachable(error)}; a Firework it was running stays "
            "RUNNING until `lpad detect_lostruns --rerun`, whose rerun stores its kept result",
            file=sys.stderr,
        )
        return EXIT_DATABASE_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
