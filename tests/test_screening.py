"""Screening and active learning on documents the builders made from recorded real FEFF runs.

The data are ``tests/data/builders_recorded.json.gz`` (real FEFF10 "smoke" tasks of NiO and
CoO stretched along c, produced by vtc-fw's engine; see tests/test_builders.py), built into
xes, features, a tiny model and its predictions on in-memory stores.
"""

from __future__ import annotations

import pytest
from test_builders import memory_store, recorded, run_all

from vtc_fw.app.screening import least_certain, screen, screening_query


@pytest.fixture(scope="module")
def stores():
    data = recorded()
    names = {
        "structures": "structure_id",
        "tasks": "task_key",
        "xes": "record_key",
        "features": "record_key",
        "models": "model_id",
        "model_blobs": "model_id",
        "predictions": "prediction_key",
    }
    stores = {name: memory_store(name, key) for name, key in names.items()}
    stores["structures"].update(data["structures"])
    stores["tasks"].update(data["tasks"])
    run_all(stores)
    return stores


def test_screening_query_is_a_plain_mongo_filter(stores):
    query = screening_query(0.05, element="Co")
    assert query == {
        "state": "successful",
        "sams": {"$gte": 0.05},
        "element": "Co",
        "in_domain": True,
    }
    hits = list(stores["predictions"].query(query))
    assert hits and all(h["element"] == "Co" and h["sams"] >= 0.05 for h in hits)


def test_screen_ranks_by_sams_and_prefers_feff_values(stores):
    candidates = screen(
        stores["predictions"], stores["xes"], stores["models"], min_sams=0.0, limit=100
    )
    assert len(candidates) == 13
    sams = [c["sams"] for c in candidates]
    assert sams == sorted(sams, reverse=True)
    by_key = {c["record_key"]: c for c in candidates}
    xes = {d["record_key"]: d for d in stores["xes"].query({"state": "successful"})}
    for key, document in xes.items():
        assert by_key[key]["source"] == "feff" and by_key[key]["sams"] == document["sams"]
    # the record whose FEFF task failed can only be screened through the model
    assert by_key["test:NiO-c6pct:Ni"]["source"] == "model"


def test_screen_filters_by_element_threshold_and_limit(stores):
    candidates = screen(
        stores["predictions"], stores["xes"], stores["models"], min_sams=0.1, element="Ni"
    )
    assert candidates and all(c["element"] == "Ni" and c["sams"] >= 0.1 for c in candidates)
    top = screen(stores["predictions"], stores["xes"], stores["models"], min_sams=0.0, limit=2)
    assert len(top) == 2


def test_least_certain_skips_records_with_a_feff_sams(stores):
    picks = least_certain(stores["predictions"], stores["xes"], stores["models"], n=5)
    assert [p["record_key"] for p in picks] == ["test:NiO-c6pct:Ni"]
    assert picks[0]["sams_std"] >= 0


def test_no_model_no_predictions_screened():
    empty = {name: memory_store(name, key) for name, key in [("p", "k"), ("x", "k"), ("m", "k")]}
    assert screen(empty["p"], empty["x"], empty["m"], min_sams=0.0) == []
    assert least_certain(empty["p"], empty["x"], empty["m"], n=3) == []


def test_repeated_rows_of_one_entry_are_listed_once():
    from vtc_fw.app.screening import collapse_repeated_rows

    def row(structure_id, sams):
        return {
            "record_key": f"{structure_id}:Mn",
            "structure_id": structure_id,
            "element": "Mn",
            "sams": sams,
        }

    ranked = [
        row("oqmd-icsd:1-2-AMnO3", 0.3),
        row("oqmd-icsd:1-2-AMnO3#9", 0.3),
        row("oqmd-icsd:1-2-AMnO3#11", 0.25),
        row("oqmd-icsd:3-4-BMnO3", 0.3),
    ]
    kept = collapse_repeated_rows(ranked)
    assert [c["structure_id"] for c in kept] == [
        "oqmd-icsd:1-2-AMnO3",
        "oqmd-icsd:1-2-AMnO3#11",
        "oqmd-icsd:3-4-BMnO3",
    ]
    assert kept[0]["repeated_as"] == ["oqmd-icsd:1-2-AMnO3#9:Mn"]
