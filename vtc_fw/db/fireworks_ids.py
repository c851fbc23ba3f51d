"""FireWorks id counters that stay unique on every MongoDB-wire server, the embedded one included.

FireWorks draws Firework and Launch ids with ``find_one_and_update({}, {"$inc": ...})`` and
reads the counter from the document as it was *before* the update. MongoDB returns that
pre-image from inside the atomic write. secantusdb 0.7.0b3, the embedded default, returns the
document its query found *before* it took the write lock, so two clients drawing at the same
moment both get the same number (``benchmarks/id_counter_race.py``: 3 processes drawing 300
ids each received 197–292 duplicates with the pre-image, none with the post-image). Two
``rlaunch`` workers that draw the same launch id overwrite each other's Launch document, and
the first to finish marks the other's Firework COMPLETED while it is still running.

:func:`use_atomic_id_counters` replaces the two ``LaunchPad`` id draws with ones that read the
post-image, which the server takes inside its write, and subtract the increment: the same ids
MongoDB hands out, atomic on both servers. ``vtc_fw.db`` calls it on import, so it is in force
in every process that builds a vtc-fw LaunchPad and in every ``rlaunch``/``qlaunch`` worker
running a vtc-fw Firework: the worker imports ``vtc_fw.firetasks`` while it deserializes the
checked-out Firework, before it draws that launch's id.
"""

from __future__ import annotations

from fireworks import LaunchPad
from pymongo import ReturnDocument
from pymongo.collection import Collection


def draw_ids(counters: Collection, counter: str, quantity: int = 1) -> int:
    """Reserve ``quantity`` consecutive ids of ``counter`` and return the first.

    Args:
        counters: The collection holding the counter document (a LaunchPad's
            ``fw_id_assigner``).
        counter: ``"next_fw_id"`` or ``"next_launch_id"``.
        quantity: How many ids to reserve.

    Raises:
        ValueError: The database has no id counter (it was never reset), as FireWorks says.
    """
    after = counters.find_one_and_update(
        {}, {"$inc": {counter: quantity}}, return_document=ReturnDocument.AFTER
    )
    if after is None:
        raise ValueError(
            f"Could not get {counter}! If you have not yet initialized the database, please "
            "do so by performing a database reset (e.g., lpad reset)"
        )
    return after[counter] - quantity


def _get_new_fw_id(self: LaunchPad, quantity: int = 1) -> int:
    """Checkout the next Firework id (the first of ``quantity``)."""
    return draw_ids(self.fw_id_assigner, "next_fw_id", quantity)


def _get_new_launch_id(self: LaunchPad) -> int:
    """Checkout the next Launch id."""
    return draw_ids(self.fw_id_assigner, "next_launch_id")


def use_atomic_id_counters() -> None:
    """Make ``LaunchPad.get_new_fw_id`` and ``get_new_launch_id`` draw atomically (idempotent)."""
    LaunchPad.get_new_fw_id = _get_new_fw_id
    LaunchPad.get_new_launch_id = _get_new_launch_id
