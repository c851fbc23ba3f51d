"""How often concurrent FireWorks-style id draws collide on a server, with and without vtc-fw.

Starts a private secantusd-py (temp dir, free port) unless ``--uri`` names a server, then lets
P processes draw N ids each from one counter document, the way FireWorks' ``get_new_launch_id``
does, in two modes:

- ``pre-image``: ``find_one_and_update(..., return_document=BEFORE)``, FireWorks' own draw;
- ``post-image``: ``return_document=AFTER`` minus the increment, vtc-fw's draw
  (:mod:`vtc_fw.db.fireworks_ids`).

Prints the ids issued, the distinct ids and the duplicates of each mode. On MongoDB both modes
give no duplicates. When secantusdb's pre-image draw shows none either, the server has been
fixed and ``vtc_fw.db.fireworks_ids`` can go.

Usage: python benchmarks/id_counter_race.py [--processes 3] [--draws 300] [--uri mongodb://...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
from pathlib import Path

from pymongo import MongoClient

from vtc_fw.db.embedded import EmbeddedServer, free_port
from vtc_fw.db.fireworks_ids import draw_ids

DATABASE, COUNTER = "vtc_id_counter_race", "next_launch_id"


def draw(uri: str, mode: str, n_draws: int) -> list[int]:
    """``n_draws`` ids from the counter, drawn the way ``mode`` says."""
    counters = MongoClient(uri)[DATABASE]["fw_id_assigner"]
    if mode == "post-image":
        return [draw_ids(counters, COUNTER) for _ in range(n_draws)]
    pre_images = (counters.find_one_and_update({}, {"$inc": {COUNTER: 1}}) for _ in range(n_draws))
    return [document[COUNTER] for document in pre_images]


def race(uri: str, mode: str, n_processes: int, n_draws: int) -> tuple[int, int]:
    """(ids issued, distinct ids) when ``n_processes`` draw ``n_draws`` ids each at once."""
    counters = MongoClient(uri)[DATABASE]["fw_id_assigner"]
    counters.drop()
    counters.insert_one({COUNTER: 1})
    with multiprocessing.Pool(n_processes) as pool:
        drawn = pool.starmap(draw, [(uri, mode, n_draws)] * n_processes)
    ids = [launch_id for batch in drawn for launch_id in batch]
    return len(ids), len(set(ids))


def report(uri: str, n_processes: int, n_draws: int) -> None:
    print(f"{n_processes} processes × {n_draws} draws on {uri}")
    for mode in ("pre-image", "post-image"):
        issued, distinct = race(uri, mode, n_processes, n_draws)
        print(f"  {mode:<10}: {issued} ids issued, {distinct} distinct, {issued - distinct} dup")
    MongoClient(uri).drop_database(DATABASE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--draws", type=int, default=300, help="ids drawn by each process")
    parser.add_argument("--uri", default=None, help="a running server (default: a private one)")
    arguments = parser.parse_args()
    if arguments.uri:
        report(arguments.uri, arguments.processes, arguments.draws)
        return
    with tempfile.TemporaryDirectory() as home:
        server = EmbeddedServer(home=Path(home), port=free_port(), cache_size="64M")
        server.start()
        try:
            report(f"mongodb://{server.host}:{server.port}", arguments.processes, arguments.draws)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
