"""xes documents carry the orientation quantities of σ where the task stored it.

Input: three real "screen" task documents with σ, recorded from our own runs
(tests/data/screen_tasks_recorded.jsonl.gz; tests/data/feff/README.md says how they were made).
"""

import gzip
from pathlib import Path

import numpy as np
import pytest
from bson import json_util

from vtc_fw.documents.base import BuilderMeta
from vtc_fw.documents.xes import XesDocument
from vtc_fw.science.anisotropy import (
    anisotropy_invariant,
    sams_in_basis,
    sigma_from_components,
)

RECORDED = Path(__file__).parent / "data" / "screen_tasks_recorded.jsonl.gz"


@pytest.fixture(scope="module")
def tasks() -> list[dict]:
    with gzip.open(RECORDED, "rt") as handle:
        return [json_util.loads(line) for line in handle]


def _document(task: dict) -> XesDocument:
    return XesDocument.from_tasks([task], builder_meta=BuilderMeta(builder="test"))


def test_sigma_gives_the_stored_sams_and_the_orientation_quantities(tasks):
    for task in tasks:
        document = _document(task)
        energies = np.asarray(task["energies"])
        sigma = sigma_from_components(task["sigma"])
        basis = np.asarray(task["basis"])
        assert abs(sams_in_basis(energies, sigma, basis) - task["sams"]) < 1e-4
        assert document.has_sigma and document.sams_max >= document.sams - 1e-9
        assert document.sams_max <= 3 * document.a_inv + 1e-9
        assert document.a_inv == pytest.approx(anisotropy_invariant(energies, sigma))
        first, second = np.asarray(document.best_pair["directions"])
        assert abs(first @ second) < 1e-6 and document.best_pair["value"] > 0


def test_a_task_without_sigma_is_flagged(tasks):
    legacy = {key: value for key, value in tasks[1].items() if key not in ("sigma", "sigma_frame")}
    document = _document(legacy)
    assert document.has_sigma is False and document.sams_max is None and document.a_inv is None


def test_screening_by_a_sigma_quantity_ranks_the_records_with_sigma(tasks):
    from test_builders import memory_store

    from vtc_fw.app.screening import screen_sigma

    xes = memory_store("xes", "record_key")
    legacy = {key: value for key, value in tasks[0].items() if key not in ("sigma", "sigma_frame")}
    documents = [_document(task).model_dump() for task in [*tasks[1:], legacy]]
    xes.update(documents)
    ranked = screen_sigma(xes, "sams_max", minimum=0.0, limit=10)
    assert [c["record_key"] for c in ranked] == [
        d["record_key"] for d in sorted(documents[:2], key=lambda d: -d["sams_max"])
    ]  # the record without σ is not a candidate
    assert screen_sigma(xes, "a_inv", minimum=0.2)[0]["a_inv"] >= 0.2
    with pytest.raises(ValueError, match="quantity"):
        screen_sigma(xes, "sams", minimum=0.0)
