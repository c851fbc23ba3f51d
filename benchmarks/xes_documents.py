"""Benchmark: build the xes documents of committed task files, as XesBuilder does.

Prints the CPU seconds per record (most of it the orientation search over σ: SAMS_max and the
best pair), then each record's SAMS and SAMS_max, to compare one version of vtc-fw with another.

    .venv/bin/python benchmarks/xes_documents.py [--limit 8] [FILE.jsonl.gz ...]

Default file: data/screen_scf/batch_001.jsonl.gz (screen_scf tasks with σ).
"""

import argparse
import time
from pathlib import Path

from vtc_fw.app.transfer import read_transfer_file
from vtc_fw.documents.base import BuilderMeta
from vtc_fw.documents.xes import XesDocument

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "data" / "screen_scf" / "batch_001.jsonl.gz"


def records(paths: list[Path], limit: int) -> list[list[dict]]:
    """The first ``limit`` successful records' task documents, grouped by record."""
    grouped: dict[str, list[dict]] = {}
    for path in paths:
        for task in read_transfer_file(path).tasks:
            if task.state == "successful":
                grouped.setdefault(task.record_key, []).append(task.model_dump())
    return list(grouped.values())[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="*", default=[DEFAULT_FILE])
    parser.add_argument("--limit", type=int, default=8, help="records to build")
    arguments = parser.parse_args()
    items = records(arguments.files, arguments.limit)
    meta = BuilderMeta(builder="benchmark")
    start = time.process_time()
    documents = [XesDocument.from_tasks(tasks, builder_meta=meta) for tasks in items]
    cpu_s = time.process_time() - start
    print(f"{len(documents)} records, {cpu_s / len(documents):.2f} CPU-s per record")
    for document in documents:
        print(f"  {document.record_key}: SAMS {document.sams:.6f}, SAMS_max {document.sams_max}")


if __name__ == "__main__":
    main()
