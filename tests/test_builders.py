"""The maggma builders, phase by phase on in-memory stores, then end to end on the test server.

Replays ``tests/data/builders_recorded.json.gz``: task documents of real FEFF10 runs that
vtc-fw's own engine produced (``tests/data/make_builders_recorded.py``, preset "smoke") for
rock-salt NiO and CoO stretched along c by 0-5 %, one task that really failed (time budget
exhausted) for NiO stretched 6 %, and the structures documents of all of them.
Training uses a tiny search space so each fit takes well under a second.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from maggma.stores import MemoryStore
from sklearn.ensemble import ExtraTreesRegressor

from vtc_fw.builders import (
    FeatureBuilder,
    PredictionBuilder,
    TrainBuilder,
    XesBuilder,
    nightly_builders,
    records_without_structure,
    run_builders,
)
from vtc_fw.builders.predict import feature_vector
from vtc_fw.builders.train import (
    ensemble_of,
    latest_model,
    load_estimator,
    serialize_estimator,
)
from vtc_fw.cli import main
from vtc_fw.db.lock import holding_build_lock
from vtc_fw.errors import ModelBlobError
from vtc_fw.keys import CRYSTAL_SUMS
from vtc_fw.ml.protocol import wide_search_space
from vtc_fw.ml.table import CRYSTAL_COLUMNS
from vtc_fw.science.coordination import FIRST_SHELL_FEATURES
from vtc_fw.science.features import FEATURE_COLUMNS, SWEEP_EXPONENTS

RECORDED = Path(__file__).parent / "data" / "builders_recorded.json.gz"
TINY_SPACE = {
    "n_estimators": [10],
    "max_depth": [4],
    "max_features": [0.3],
    "min_samples_leaf": [1],
    "min_samples_split": [2],
    "max_samples": [0.8],
    "bootstrap": [True],
}
TINY_TRAINING = {"n_iter": 1, "cv": 2, "search_space": TINY_SPACE, "permutation_repeats": 2}


def recorded() -> dict:
    """Structures and task documents with fresh last_updated stamps (datetimes)."""
    with gzip.open(RECORDED, "rt") as handle:
        data = json.load(handle)
    now = datetime.now(UTC) - timedelta(minutes=5)
    for document in data["structures"] + data["tasks"]:
        document["last_updated"] = now
    return data


class ReusableMemoryStore(MemoryStore):
    """A MemoryStore that survives a builder's finalize (which closes its stores), so that
    a test can inspect it and run the next build on the same data."""

    def close(self) -> None:
        pass


def memory_store(name: str, key: str) -> MemoryStore:
    store = ReusableMemoryStore(collection_name=name, key=key)
    store.connect()
    return store


@pytest.fixture
def stores() -> dict[str, MemoryStore]:
    data = recorded()
    stores = {
        "structures": memory_store("structures", "structure_id"),
        "tasks": memory_store("tasks", "task_key"),
        "xes": memory_store("xes", "record_key"),
        "features": memory_store("features", "record_key"),
        "models": memory_store("models", "model_id"),
        "model_blobs": memory_store("model_blobs", "model_id"),
        "predictions": memory_store("predictions", "prediction_key"),
    }
    stores["structures"].update(data["structures"])
    stores["tasks"].update(data["tasks"])
    return stores


def xes_builder(stores) -> XesBuilder:
    return XesBuilder(stores["tasks"], stores["xes"], preset="smoke")


def feature_builder(stores) -> FeatureBuilder:
    return FeatureBuilder(stores["structures"], stores["features"])


def train_builder(stores, seed: int = 0, **options) -> TrainBuilder:
    return TrainBuilder(
        stores["features"],
        stores["xes"],
        stores["models"],
        stores["model_blobs"],
        seed=seed,
        **{**TINY_TRAINING, "preset": "smoke", **options},
    )


def prediction_builder(stores) -> PredictionBuilder:
    return PredictionBuilder(
        stores["features"], stores["models"], stores["model_blobs"], stores["predictions"]
    )


def run_all(stores) -> dict[str, int]:
    return run_builders(
        [
            xes_builder(stores),
            feature_builder(stores),
            train_builder(stores),
            prediction_builder(stores),
        ]
    )


# --- XesBuilder ---------------------------------------------------------------------------


def test_xes_get_items_groups_tasks_by_record(stores):
    groups = list(xes_builder(stores).get_items())
    assert len(groups) == 13
    assert all(len({task["record_key"] for task in group}) == 1 for group in groups)


def test_xes_process_item_recomputes_the_tasks_sams(stores):
    builder = xes_builder(stores)
    documents = {d["record_key"]: d for d in map(builder.process_item, builder.get_items())}
    cubic = documents["test:NiO-c0pct:Ni"]
    assert cubic["state"] == "successful" and cubic["sams"] < 1e-3
    for document in documents.values():
        if document["state"] == "successful":
            assert document["sams"] == pytest.approx(document["task_sams"], abs=1e-9)
            assert len(document["mu"]) == 3 and len(document["mu"][0]) == len(document["energies"])
    # stretching along c makes the spectra anisotropic, growing with the strain
    nio = [documents[f"test:NiO-c{p}pct:Ni"]["sams"] for p in range(6)]
    assert nio == sorted(nio)
    failed = documents["test:NiO-c6pct:Ni"]
    assert failed["state"] == "failed" and failed["error"]["reason"] == "no_successful_task"
    assert "timeout" in failed["error"]["message"]
    assert failed["sams"] is None


def test_spectra_without_scf_are_flagged_and_not_trained_on(stores):
    task = stores["tasks"].query_one({"task_key": "test:CoO-c3pct:Co:smoke"})
    task["sites"][0]["rung"] = "no_scf"
    stores["tasks"].update([task])
    run_builders([xes_builder(stores), feature_builder(stores)])
    flagged = stores["xes"].query_one({"record_key": "test:CoO-c3pct:Co"})
    assert flagged["state"] == "successful" and flagged["self_consistent"] is False
    assert flagged["rungs"] == ["no_scf"]
    assert stores["xes"].count({"self_consistent": True}) == 11
    (item,) = train_builder(stores).get_items()
    model = train_builder(stores).process_item(item)["model"]
    assert model["excluded"]["no_scf"] == 1
    assert "test:CoO-c3pct:Co" not in model["train_keys"] + model["test_keys"]
    assert len(model["train_keys"]) + len(model["test_keys"]) == 11


def test_xes_update_targets_then_nothing_is_stale_until_a_task_changes(stores):
    builder = xes_builder(stores)
    builder.update_targets([builder.process_item(item) for item in builder.get_items()])
    assert stores["xes"].count() == 13 and builder.documents_written == 13
    assert list(builder.get_items()) == []
    task = stores["tasks"].query_one({"task_key": "test:CoO-c3pct:Co:smoke"})
    task["last_updated"] = datetime.now(UTC)
    stores["tasks"].update([task])
    (group,) = builder.get_items()
    assert group[0]["record_key"] == "test:CoO-c3pct:Co"


def test_xes_documents_built_in_two_processes_are_those_built_in_one(stores):
    builder = xes_builder(stores)
    serial = {d["record_key"]: d for d in map(builder.process_item, builder.get_items())}
    assert run_builders([xes_builder(stores)], processes=2) == {"XesBuilder": 13}
    volatile = {"_id", "last_updated", "builder_meta"}
    for built in stores["xes"].query():
        expected = serial[built["record_key"]]
        assert {k: v for k, v in built.items() if k not in volatile} == {
            k: v for k, v in expected.items() if k not in volatile
        }


# --- FeatureBuilder -----------------------------------------------------------------------


def test_features_of_cubic_and_stretched_nio(stores):
    builder = feature_builder(stores)
    items = {item["structure_id"]: item for item in builder.get_items()}
    assert len(items) == 13
    (cubic,) = builder.process_item(items["test:NiO-c0pct"])
    (stretched,) = builder.process_item(items["test:NiO-c5pct"])
    assert cubic["state"] == "successful" and cubic["in_domain"]
    assert cubic["QAMS"] == pytest.approx(0, abs=1e-9) and cubic["IAMS"] == pytest.approx(
        0, abs=1e-9
    )
    assert stretched["QAMS"] > 0.01 and stretched["IAMS"] > 0.01
    assert sorted(map(int, stretched["sweep"])) == list(SWEEP_EXPONENTS)
    assert stretched["sweep"][str(stretched["exponent"])]["QAMS"] == pytest.approx(
        stretched["QAMS"]
    )


def test_structure_without_3d_metal_becomes_a_failed_document(stores):
    builder = feature_builder(stores)
    item = dict(next(iter(builder.get_items())))
    rock_salt = item["structure"]
    for site in rock_salt["sites"]:
        site["species"] = [
            {"element": "Mg" if site["species"][0]["element"] != "O" else "O", "occu": 1}
        ]
    item["structure_id"] = "test:MgO"
    (document,) = builder.process_item(item)
    assert document["state"] == "failed" and document["record_key"] == "test:MgO"
    assert document["error"]["reason"] == "no_3d_metal"
    # an entry whose file could not be read is recorded with the reader's message
    (unreadable,) = builder.process_item(
        {**item, "structure_id": "file:broken", "structure": None, "error": "bad CIF loop"}
    )
    assert unreadable["state"] == "failed" and unreadable["error"]["reason"] == "unreadable"
    assert "bad CIF loop" in unreadable["error"]["message"]


def test_features_are_incremental_and_replace_a_rebuilt_structure(stores):
    builder = feature_builder(stores)
    builder.update_targets([builder.process_item(item) for item in builder.get_items()])
    assert stores["features"].count() == 13
    assert list(builder.get_items()) == []
    structure = stores["structures"].query_one({"structure_id": "test:CoO-c2pct"})
    structure["last_updated"] = datetime.now(UTC)
    stores["structures"].update([structure])
    items = list(builder.get_items())
    assert [item["structure_id"] for item in items] == ["test:CoO-c2pct"]
    builder.update_targets([builder.process_item(item) for item in items])
    assert stores["features"].count() == 13


def test_features_built_with_other_parameters_are_rebuilt(stores):
    builder = feature_builder(stores)
    builder.update_targets([builder.process_item(item) for item in builder.get_items()])
    document = stores["features"].query_one({"structure_id": "test:NiO-c5pct"})
    assert set(document["first_shell"]) == set(FIRST_SHELL_FEATURES)
    assert document["first_shell"]["econ"] == pytest.approx(6, abs=0.1)
    assert set(document["sweep"]["5"]) == {"QAMS", "DAMS", "IAMS", *CRYSTAL_SUMS.values()}
    # a document of an older vtc-fw: no first_shell or crystal sums, parameters without them
    parameters = document["builder_meta"]["parameters"]
    del document["first_shell"], parameters["first_shell"], parameters["crystal_sums"]
    stores["features"].update([document])
    items = list(builder.get_items())
    assert [item["structure_id"] for item in items] == ["test:NiO-c5pct"]
    builder.update_targets([builder.process_item(item) for item in items])
    assert stores["features"].count() == 13
    assert list(builder.get_items()) == []
    # another exponent is another build of every structure
    assert (
        len(list(FeatureBuilder(stores["structures"], stores["features"], exponent=7).get_items()))
        == 13
    )


class CountingMemoryStore(ReusableMemoryStore):
    """Records how many documents it holds after every write, as a concurrent reader sees it."""

    counts_seen: list[int]

    def update(self, docs, key=None) -> None:
        super().update(docs, key=key)
        self.counts_seen.append(self.count())

    def remove_docs(self, criteria) -> None:
        super().remove_docs(criteria)
        self.counts_seen.append(self.count())


def test_rebuilding_features_never_leaves_a_record_missing(stores):
    """The audit's race: a rebuild deleted then reinserted, and a concurrent training saw
    315 of 496 records. Every write is now an upsert: the count never drops."""
    features = CountingMemoryStore(collection_name="features", key="record_key")
    features.connect()
    features.counts_seen = []
    builder = FeatureBuilder(stores["structures"], features)
    builder.update_targets([builder.process_item(item) for item in builder.get_items()])
    later = datetime.now(UTC) + timedelta(seconds=1)
    touched = [{**doc, "last_updated": later} for doc in stores["structures"].query()]
    stores["structures"].update(touched)
    features.counts_seen = []
    builder.update_targets([builder.process_item(item) for item in builder.get_items()])
    assert features.counts_seen and min(features.counts_seen) == 13


def test_a_rebuilt_structure_drops_only_the_records_it_no_longer_yields(stores):
    builder = feature_builder(stores)
    builder.update_targets([builder.process_item(item) for item in builder.get_items()])
    # an earlier build failed the whole structure: one document keyed by its structure_id
    stores["features"].update(
        [{"record_key": "test:NiO-c2pct", "structure_id": "test:NiO-c2pct", "state": "failed"}]
    )
    item = stores["structures"].query_one({"structure_id": "test:NiO-c2pct"})
    builder.update_targets([builder.process_item(item)])
    keys = stores["features"].distinct("record_key", {"structure_id": "test:NiO-c2pct"})
    assert keys == ["test:NiO-c2pct:Ni"]


# --- TrainBuilder and PredictionBuilder ----------------------------------------------------


def test_train_counts_failed_tasks_and_stores_a_verifiable_blob(stores):
    run_builders([xes_builder(stores), feature_builder(stores)])
    builder = train_builder(stores)
    (item,) = builder.get_items()
    output = builder.process_item(item)
    model = output["model"]
    assert model["state"] == "successful"
    assert model["excluded"]["failed_tasks"] == 1
    assert len(model["train_keys"]) + len(model["test_keys"]) == 12
    assert {"Ni", "Co"} == set(model["test_elements"])
    # out-of-fold scores cover every training record, per element
    oof = {row["element"]: row["n_test"] for row in model["per_element_oof"]}
    assert set(oof) == {"Ni", "Co"} and sum(oof.values()) == len(model["train_keys"])
    assert isinstance(model["r2_oof"], float) and model["mae_oof"] >= 0
    builder.update_targets([output])
    # the stored estimator reproduces the test predictions of the model document
    estimator = load_estimator(stores["model_blobs"], model["model_id"])
    test_features = [
        feature_vector(
            stores["features"].query_one({"record_key": key}),
            model["feature_columns"],
            model["exponent"],
        )
        for key in model["test_keys"]
    ]
    assert np.allclose(estimator.predict(np.array(test_features)), model["test_predicted"])
    # a blob whose bytes do not hash to its id is refused
    blob = stores["model_blobs"].query_one({"model_id": model["model_id"]})
    model_id, data = serialize_estimator(estimator, model["feature_columns"])
    assert model_id == model["model_id"]  # the loaded forest is the stored one, byte for byte
    other_bytes = base64.b64encode(data + b"\0").decode()
    stores["model_blobs"].update([{**blob, "data": other_bytes}])
    with pytest.raises(ModelBlobError, match="corrupt"):
        load_estimator(stores["model_blobs"], model["model_id"])
    # nothing new arrived: no training
    assert list(builder.get_items()) == []


def test_training_is_skipped_only_after_a_successful_model_of_the_same_data(stores):
    run_builders([xes_builder(stores), feature_builder(stores)])
    later = datetime.now(UTC) + timedelta(hours=1)
    searched_as_now = {"parameters": {"search_space": TINY_SPACE}}
    attempt = {
        "sources_last_updated": later,
        "last_updated": later,
        "builder_meta": searched_as_now,
    }
    stores["models"].update([{**attempt, "model_id": "failed-1", "state": "failed"}])
    assert len(list(train_builder(stores).get_items())) == 1
    # a model from before feature sets were recorded is the paper's: current for paper only
    stores["models"].update([{**attempt, "model_id": "m-1", "state": "successful"}])
    assert list(train_builder(stores, feature_set="paper").get_items()) == []
    assert len(list(train_builder(stores, feature_set="crystal").get_items())) == 1
    crystal = {**attempt, "model_id": "m-2", "state": "successful", "feature_set": "crystal"}
    stores["models"].update([crystal])
    assert list(train_builder(stores, feature_set="crystal").get_items()) == []
    # another target of the same inputs is another configuration
    assert len(list(train_builder(stores, target="sams_max").get_items())) == 1


def test_each_feature_set_searches_its_own_space_and_another_space_is_trained_again(stores):
    """Paper features keep the paper's space; the crystal sums search the wide one, and a model
    of theirs searched over the paper's space (trained before the switch) is not current."""
    run_builders([xes_builder(stores), feature_builder(stores)])
    defaults = {"search_space": None, "n_iter": 1}
    assert train_builder(stores, feature_set="paper", **defaults)._parameters()["search_space"] == (
        "paper"
    )
    crystal = train_builder(stores, feature_set="crystal", **defaults)
    (item,) = crystal.get_items()
    model = crystal.process_item(item)["model"]
    assert model["builder_meta"]["parameters"]["search_space"] == "wide"
    assert set(model["best_params"]) == set(wide_search_space())
    later = datetime.now(UTC) + timedelta(hours=1)

    def stored(space: str, minutes: int) -> dict:
        return {
            "model_id": f"m-{space}",
            "state": "successful",
            "feature_set": "crystal",
            "sources_last_updated": later,
            "last_updated": later + timedelta(minutes=minutes),
            "builder_meta": {"parameters": {"search_space": space}},
        }

    # the newest crystal model was searched over the paper's space: trained again
    stores["models"].update([stored("paper", 0)])
    assert len(list(train_builder(stores, **defaults).get_items())) == 1
    stores["models"].update([stored("wide", 1)])
    assert list(train_builder(stores, **defaults).get_items()) == []
    assert len(list(train_builder(stores, search_space="paper", n_iter=1).get_items())) == 1


def test_extremely_randomized_trees_are_trained_stored_and_predicted_with(stores):
    run_builders([xes_builder(stores), feature_builder(stores)])
    builder = train_builder(stores, feature_set="crystal", search_space="extra_trees")
    (item,) = builder.get_items()
    output = builder.process_item(item)
    model = output["model"]
    assert model["builder_meta"]["parameters"]["search_space"] == "extra_trees"
    assert model["best_params"]["bootstrap"] is False
    assert ensemble_of(model) == "extremely randomized trees"
    wide = {"builder_meta": {"parameters": {"search_space": "wide"}}}
    assert ensemble_of(wide) == "random forest"
    builder.update_targets([output])
    estimator = load_estimator(stores["model_blobs"], model["model_id"])
    assert type(estimator) is ExtraTreesRegressor
    run_builders([prediction_builder(stores)])
    predictions = list(stores["predictions"].query({"model_id": model["model_id"]}))
    assert len(predictions) == 13 and all(p["sams_std"] >= 0 for p in predictions)


def test_a_build_without_structures_writes_one_failed_model_then_nothing(stores):
    """Tasks imported without their structures: xes, no features, one failed attempt; later
    builds on the same data write nothing; once the structures arrive, a model is trained."""
    stores["structures"].remove_docs({})
    assert run_builders([xes_builder(stores), train_builder(stores)]) == {
        "XesBuilder": 13,
        "TrainBuilder": 1,
    }
    (failed,) = stores["models"].query({"state": "failed"})
    assert failed["excluded"]["no_features"] == 12
    assert "no record has both successful features and a SAMS" in failed["error"]["message"]
    assert records_without_structure(stores["xes"], stores["structures"]) == sorted(
        stores["xes"].distinct("record_key")
    )
    assert run_all(stores) == dict.fromkeys(
        ["XesBuilder", "FeatureBuilder", "TrainBuilder", "PredictionBuilder"], 0
    )
    assert stores["models"].count() == 1
    stores["structures"].update(recorded()["structures"])
    assert records_without_structure(stores["xes"], stores["structures"]) == []
    written = run_all(stores)
    assert written["FeatureBuilder"] == 13 and written["TrainBuilder"] == 1
    (model,) = stores["models"].query({"state": "successful"})
    assert len(model["train_keys"]) + len(model["test_keys"]) == 12


def test_training_is_reproducible(stores):
    run_builders([xes_builder(stores), feature_builder(stores)])
    models = [train_builder(stores).process_item(next(iter(train_builder(stores).get_items())))]
    models.append(train_builder(stores).process_item(next(iter(train_builder(stores).get_items()))))
    assert models[0]["model"]["model_id"] == models[1]["model"]["model_id"]


def test_training_takes_the_labels_of_its_preset_and_records_their_fidelity(stores):
    run_builders([xes_builder(stores), feature_builder(stores)])
    cheap = stores["xes"].query_one({"record_key": "test:NiO-c3pct:Ni"})
    stores["xes"].update([{**cheap, "preset": "screen"}])
    builder = train_builder(stores)
    model = builder.process_item(next(iter(builder.get_items())))["model"]
    assert model["excluded"]["other_preset"] == 1
    assert "test:NiO-c3pct:Ni" not in model["train_keys"] + model["test_keys"]
    assert model["fidelity"] == {"smoke": 11} and model["preset"] == "smoke"
    # the cheap fidelity is never trained on until it is calibrated
    assert list(train_builder(stores, preset="screen").get_items()) == []


def test_a_target_of_sigma_leaves_out_records_without_it(stores):
    run_builders([xes_builder(stores), feature_builder(stores)])
    with_sigma = sorted(stores["xes"].distinct("record_key", {"state": "successful"}))[:8]
    for key in with_sigma:
        document = stores["xes"].query_one({"record_key": key})
        stores["xes"].update([{**document, "sams_max": 1.1 * document["sams"]}])
    builder = train_builder(stores, target="sams_max")
    output = builder.process_item(next(iter(builder.get_items())))
    model = output["model"]
    assert model["target"] == "sams_max" and model["excluded"]["no_sigma"] == 4
    assert sorted(model["train_keys"] + model["test_keys"]) == with_sigma
    by_key = {key: 1.1 * stores["xes"].query_one({"record_key": key})["sams"] for key in with_sigma}
    assert model["test_true"] == pytest.approx([by_key[key] for key in model["test_keys"]])
    builder.update_targets([output])
    run_builders([prediction_builder(stores)])
    assert set(stores["predictions"].distinct("target")) == {"sams_max"}


def test_each_configuration_has_its_current_model_and_predictions_name_it(stores):
    run_all(stores)
    crystal = latest_model(stores["models"], "crystal", "sams")
    assert crystal["feature_columns"] == list(CRYSTAL_COLUMNS)
    assert latest_model(stores["models"], "paper") is None
    paper_builder = train_builder(stores, feature_set="paper")
    written = run_builders([paper_builder, prediction_builder(stores)])
    assert written == {"TrainBuilder": 1, "PredictionBuilder": 13}
    paper = latest_model(stores["models"], "paper", "sams")
    assert paper["feature_columns"] == list(FEATURE_COLUMNS) and paper["fidelity"] == {"smoke": 12}
    assert latest_model(stores["models"], "crystal")["model_id"] == crystal["model_id"]
    assert latest_model(stores["models"])["model_id"] == paper["model_id"]  # the newest of any
    for model in (crystal, paper):
        predictions = list(stores["predictions"].query({"model_id": model["model_id"]}))
        assert len(predictions) == 13
        assert {(p["feature_set"], p["target"]) for p in predictions} == {
            (model["feature_set"], "sams")
        }


def test_predictions_for_every_record_with_tree_spread(stores):
    written = run_all(stores)
    assert written == {
        "XesBuilder": 13,
        "FeatureBuilder": 13,
        "TrainBuilder": 1,
        "PredictionBuilder": 13,
    }
    predictions = list(stores["predictions"].query())
    assert all(p["state"] == "successful" and p["in_domain"] for p in predictions)
    assert all(p["sams_std"] >= 0 for p in predictions)
    # every tree of a forest fitted on SAMS ≥ 0 predicts a SAMS ≥ 0
    assert min(p["sams"] for p in predictions) >= 0


def test_a_new_model_adds_predictions_and_old_ones_stay(stores):
    run_all(stores)
    assert run_all(stores) == dict.fromkeys(
        ["XesBuilder", "FeatureBuilder", "TrainBuilder", "PredictionBuilder"], 0
    )
    task = stores["tasks"].query_one({"task_key": "test:NiO-c2pct:Ni:smoke"})
    task["last_updated"] = datetime.now(UTC)
    stores["tasks"].update([task])
    written = run_builders(
        [xes_builder(stores), train_builder(stores, seed=1), prediction_builder(stores)]
    )
    assert written == {"XesBuilder": 1, "TrainBuilder": 1, "PredictionBuilder": 13}
    assert len(stores["models"].distinct("model_id")) == 2
    assert stores["predictions"].count() == 26


def test_prediction_of_a_record_with_null_features_is_a_failure(stores):
    run_all(stores)
    builder = prediction_builder(stores)
    model = stores["models"].query_one({})
    features = stores["features"].query_one({"record_key": "test:NiO-c6pct:Ni"})
    # what the featurizer writes for a record without oxidation states: null at every n
    features["QAMS"] = None
    for sums in features["sweep"].values():
        sums["QAMS"] = sums[CRYSTAL_SUMS["QAMS"]] = None
    item = {"model": model, "estimator": load_estimator(stores["model_blobs"], model["model_id"])}
    (document,) = builder.process_item({**item, "features": [features]})
    assert document["state"] == "failed" and document["error"]["reason"] == "null_features"
    assert "QAMS" in document["error"]["message"]
    assert document["sams"] is None


# --- end to end on the test server, through the CLI ------------------------------------------


def store_recorded(db_config) -> dict:
    """Put the recorded structures and FEFF tasks into the test database; returns them."""
    data = recorded()
    for name in ("structures", "tasks"):
        store = db_config.store(name)
        store.connect()
        store.update(data[name])
        store.close()
    return data


def build_recorded_labels(db_config) -> dict:
    """:func:`store_recorded`, then the smoke xes documents and the features built from it."""
    data = store_recorded(db_config)
    run_builders(
        [
            XesBuilder(db_config.store("tasks"), db_config.store("xes"), preset="smoke"),
            FeatureBuilder(db_config.store("structures"), db_config.store("features")),
        ]
    )
    return data


def test_cli_build_twice_then_screen_report_suggest(db_config, launchpad, tmp_path):
    store_recorded(db_config)
    db_file = db_config.write_db_json(tmp_path / "db.json")
    runner = CliRunner()
    build = ["build", "--json", "--db-file", str(db_file), "--preset", "smoke", "--n-iter", "1"]
    first = runner.invoke(main, build)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {
        "XesBuilder": 13,
        "FeatureBuilder": 13,
        "CalibrationBuilder": 0,  # no record has both paper and screen_scf tasks
        "TrainBuilder": 1,
        "PredictionBuilder": 13,
    }
    second = runner.invoke(main, build)
    assert json.loads(second.stdout) == dict.fromkeys(json.loads(first.stdout), 0)

    screened = runner.invoke(
        main, ["screen", "--min-sams", "0.1", "--json", "--db-file", str(db_file)]
    )
    candidates = json.loads(screened.stdout)
    # FEFF values win over predictions: the 3-5 % stretched NiO and CoO have SAMS ≥ 0.1
    feff = {c["record_key"] for c in candidates if c["source"] == "feff"}
    assert feff == {f"test:{m}O-c{p}pct:{m}" for m in ("Ni", "Co") for p in (3, 4, 5)}
    assert [c["sams"] for c in candidates] == sorted((c["sams"] for c in candidates), reverse=True)

    report = runner.invoke(
        main, ["report", "--out", str(tmp_path / "report"), "--db-file", str(db_file)]
    )
    assert report.exit_code == 0, report.output
    written = {Path(line).name for line in report.stdout.split()}
    assert {
        "predicted_vs_true.png",
        "importances.png",
        "per_element_r2.png",
        "metrics.md",
    } <= written
    metrics = (tmp_path / "report" / "metrics.md").read_text()
    assert "| R² |" in metrics and "| out-of-fold records |" in metrics

    suggested = runner.invoke(main, ["suggest", "--n", "3", "--json", "--db-file", str(db_file)])
    picks = json.loads(suggested.stdout)
    # the only record without a FEFF SAMS is the one whose task failed
    assert [p["record_key"] for p in picks] == ["test:NiO-c6pct:Ni"]
    submitted = runner.invoke(
        main, ["suggest", "--n", "1", "--submit", "--json", "--db-file", str(db_file)]
    )
    (pick,) = json.loads(submitted.stdout)
    firework = launchpad.get_fw_by_id(pick["submitted_fw_id"])
    assert firework.spec["record_key"] == "test:NiO-c6pct:Ni"
    assert firework.spec["preset"] == "paper" and firework.state == "READY"
    # submitting the same pick again adds nothing: it is already queued
    again = runner.invoke(
        main, ["suggest", "--n", "1", "--submit", "--json", "--db-file", str(db_file)]
    )
    assert [p["submitted_fw_id"] for p in json.loads(again.stdout)] == [None]
    assert launchpad.get_fw_ids({"spec.record_key": "test:NiO-c6pct:Ni"}) == [firework.fw_id]


def test_a_cheap_task_is_never_screened_or_reported_as_a_feff_sams(db_config, tmp_path):
    """Issue 20's check: a task of the cheap preset (here a forged SAMS of 9.99 beside a record's
    own task, and 8.88 as another record's only task) reaches neither ``screen`` nor the model."""
    data = store_recorded(db_config)
    tasks = {t["record_key"]: t for t in data["tasks"]}
    paired, cheap_only = tasks["test:NiO-c1pct:Ni"], tasks["test:CoO-c5pct:Co"]
    collection = db_config.collection("tasks")
    cheap = {**paired, "preset": "screen_scf", "task_key": f"{paired['record_key']}:screen_scf"}
    collection.insert_one({**cheap, "sams": 9.99})
    only = {"preset": "screen_scf", "task_key": f"{cheap_only['record_key']}:screen_scf"}
    collection.update_one({"task_key": cheap_only["task_key"]}, {"$set": {**only, "sams": 8.88}})
    db_file = db_config.write_db_json(tmp_path / "db.json")
    runner = CliRunner()
    build = ["build", "--json", "--db-file", str(db_file), "--preset", "smoke", "--n-iter", "1"]
    assert runner.invoke(main, build).exit_code == 0
    screened = runner.invoke(
        main, ["screen", "--min-sams", "0", "--limit", "50", "--json", "--db-file", str(db_file)]
    )
    candidates = {c["record_key"]: c for c in json.loads(screened.stdout)}
    assert candidates[paired["record_key"]]["sams"] == pytest.approx(paired["sams"])
    assert candidates[paired["record_key"]]["source"] == "feff"
    assert candidates[cheap_only["record_key"]]["source"] == "model"
    assert not {9.99, 8.88} & {round(c["sams"], 2) for c in candidates.values()}
    model = db_config.collection("models").find_one({"state": "successful"})
    assert cheap_only["record_key"] not in model["train_keys"] + model["test_keys"]
    assert 9.99 not in model["test_true"] and model["fidelity"] == {"smoke": 11}
    report = runner.invoke(
        main, ["report", "--out", str(tmp_path / "report"), "--db-file", str(db_file)]
    )
    assert (
        report.exit_code == 0
        and "| out-of-fold records |" in (tmp_path / "report" / "metrics.md").read_text()
    )


def test_cli_build_without_structures_says_so_and_then_writes_nothing(db_config, tmp_path):
    """The audit's import: tasks without structures gave 0 features, a failed model on every
    build, and no word why."""
    tasks = db_config.store("tasks")
    tasks.connect()
    tasks.update(recorded()["tasks"])
    db_file = db_config.write_db_json(tmp_path / "db.json")
    build = ["build", "--json", "--db-file", str(db_file), "--preset", "smoke", "--n-iter", "1"]
    first = CliRunner().invoke(main, build)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {
        "XesBuilder": 13,
        "FeatureBuilder": 0,
        "CalibrationBuilder": 0,
        "TrainBuilder": 1,
        "PredictionBuilder": 0,
    }
    (warning,) = first.stderr.strip().splitlines()
    assert warning.startswith("warning: 13 xes records have no structure document")
    second = CliRunner().invoke(main, build)
    assert json.loads(second.stdout) == dict.fromkeys(json.loads(first.stdout), 0)
    assert db_config.collection("models").count_documents({}) == 1


def test_nightly_builders_are_mrun_serializable(db_config):
    builders = nightly_builders(db_config, preset="smoke")
    assert [type(b).__name__ for b in builders] == [
        "XesBuilder",
        "FeatureBuilder",
        "CalibrationBuilder",
        "TrainBuilder",
        "PredictionBuilder",
    ]
    for builder in builders:
        clone = type(builder).from_dict(builder.as_dict())
        assert clone.as_dict() == builder.as_dict()


def test_query_by_keys_returns_every_match_across_in_batches():
    from vtc_fw.builders.incremental import IN_QUERY_BATCH, query_by_keys

    store = MemoryStore(key="k")
    store.connect()
    store.update([{"k": i, "even": i % 2 == 0} for i in range(2 * IN_QUERY_BATCH + 7)])
    wanted = list(range(0, 2 * IN_QUERY_BATCH + 7, 3))
    found = [doc["k"] for doc in query_by_keys(store, "k", wanted, {"even": True})]
    assert sorted(found) == [k for k in wanted if k % 2 == 0]


# --- builds that cannot race ----------------------------------------------------------------

BIN = Path(sys.executable).parent
"""The virtual environment's scripts (vtc-fw, mrun)."""
ROOT = Path(__file__).parents[1]
"""The checkout, whose vtc_fw and builders/nightly.py the subprocesses run."""


def _build_process(db_file: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(BIN / "vtc-fw"),
            "build",
            "--json",
            "--db-file",
            str(db_file),
            "--preset",
            "smoke",
            "--n-iter",
            "1",
            "--wait",
            "300",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_two_concurrent_builds_train_the_newest_model_on_every_record(db_config, tmp_path):
    """The audit's race: two `vtc-fw build` at once trained a model on 315 of 496 records.
    Now the second waits for the first, then finds nothing new."""
    store_recorded(db_config)
    db_file = db_config.write_db_json(tmp_path / "db.json")
    builds = [_build_process(db_file) for _ in range(2)]
    outputs = [build.communicate(timeout=600) for build in builds]
    assert [build.returncode for build in builds] == [0, 0], outputs
    written = sorted((json.loads(stdout) for stdout, _ in outputs), key=lambda w: w["XesBuilder"])
    assert written == [
        dict.fromkeys(
            [
                "XesBuilder",
                "FeatureBuilder",
                "CalibrationBuilder",
                "TrainBuilder",
                "PredictionBuilder",
            ],
            0,
        ),
        {
            "XesBuilder": 13,
            "FeatureBuilder": 13,
            "CalibrationBuilder": 0,
            "TrainBuilder": 1,
            "PredictionBuilder": 13,
        },
    ]
    (model,) = db_config.collection("models").find()
    trainable = db_config.collection("xes").count_documents({"state": "successful"})
    assert model["state"] == "successful" and model["n_records"] == trainable == 12
    assert len(model["train_keys"]) + len(model["test_keys"]) == trainable
    assert db_config.collection("locks").count_documents({}) == 0


def test_a_build_while_another_runs_exits_naming_it(db_config, tmp_path):
    store_recorded(db_config)
    db_file = db_config.write_db_json(tmp_path / "db.json")
    with holding_build_lock(db_config, "vtc-fw build"):
        result = CliRunner().invoke(main, ["build", "--db-file", str(db_file)])
        nightly = subprocess.run(
            [str(BIN / "mrun"), "builders/nightly.py"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "VTC_FW_DB_FILE": str(db_file), "PYTHONPATH": str(ROOT)},
            timeout=300,
        )
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: another build is running, not building")
    assert f"pid {os.getpid()} on {socket.gethostname()}" in line and "--wait" in line
    assert nightly.returncode == 1 and "Traceback" not in nightly.stderr
    assert nightly.stderr.strip().splitlines()[-1].startswith("another build is running")
    assert db_config.collection("xes").count_documents({}) == 0


def test_cli_predict_from_features_names_its_model_and_spread(db_config, tmp_path):
    from vtc_fw.app.distortion import nio_structure

    structure_file = tmp_path / "NiO_c2.cif"
    nio_structure(2.0).to(filename=str(structure_file))
    db_file = db_config.write_db_json(tmp_path / "db.json")
    predict = ["predict", str(structure_file), "-e", "Ni", "--json", "--db-file", str(db_file)]
    runner = CliRunner()
    empty = runner.invoke(main, predict)
    assert empty.exit_code == 1 and "no trained SAMS model" in empty.output
    assert "Traceback" not in empty.output and len(empty.output.strip().splitlines()) == 1
    store_recorded(db_config)
    build = ["build", "--db-file", str(db_file), "--preset", "smoke", "--n-iter", "1"]
    assert runner.invoke(main, build).exit_code == 0
    answer = json.loads(runner.invoke(main, predict).stdout)
    model = db_config.collection("models").find_one({"state": "successful"})
    assert answer["fidelity"] == "features" and answer["record_key"] == "file:NiO_c2:Ni"
    assert (
        answer["model_id"] == model["model_id"] and model["model_id"][:12] in answer["produced_by"]
    )
    assert answer["uncertainty"] >= 0 and np.isfinite(answer["sams"])
