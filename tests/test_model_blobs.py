"""Stored models are data, not code: a database writer cannot make a build run anything.

Until issue 22 a model blob was ``joblib.load``ed, so whoever could write to ``model_blobs``
(the database has no authentication by default) could store a pickle whose ``__reduce__``
runs a command, under the SHA-256 id of its own bytes. Blobs are now JSON and ``.npy`` arrays
(:mod:`vtc_fw.ml.forest_format`), read without unpickling and checked tree by tree.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
from test_builders import memory_store

from vtc_fw.builders.train import load_estimator, serialize_estimator
from vtc_fw.errors import ModelBlobError
from vtc_fw.ml.forest_format import forest_from_bytes, forest_to_bytes
from vtc_fw.ml.protocol import tree_predictions
from vtc_fw.ml.table import CRYSTAL_COLUMNS
from vtc_fw.science.features import FEATURE_COLUMNS


def _forest(seed: int = 3) -> tuple[RandomForestRegressor, np.ndarray]:
    rows = np.random.default_rng(7).random((120, 8))
    target = rows[:, 0] + rows[:, 1] ** 2 - 0.5 * rows[:, 2] * rows[:, 3]
    forest = RandomForestRegressor(
        n_estimators=25, max_depth=6, max_features="log2", max_samples=0.7, random_state=seed
    )
    return forest.fit(rows, target), rows


def _stored(data: bytes) -> tuple[object, str]:
    """A model_blobs store holding ``data`` under its own SHA-256, as a writer would."""
    model_id = hashlib.sha256(data).hexdigest()
    store = memory_store("model_blobs", "model_id")
    store.update([{"model_id": model_id, "data": base64.b64encode(data).decode()}])
    return store, model_id


def _edited(data: bytes, member: str, edit) -> bytes:
    """The blob with one member replaced by ``edit(its bytes)``."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            target.writestr(info, edit(content) if info.filename == member else content)
    return buffer.getvalue()


def test_the_loaded_forest_predicts_exactly_as_the_trained_one():
    forest, rows = _forest()
    loaded = forest_from_bytes(forest_to_bytes(forest))
    assert np.array_equal(tree_predictions(loaded, rows), tree_predictions(forest, rows))
    assert np.array_equal(loaded.predict(rows), forest.predict(rows))
    assert loaded.get_params() == forest.get_params()


def test_extremely_randomized_trees_round_trip_without_a_bootstrap():
    rows = np.random.default_rng(7).random((120, 8))
    extra = ExtraTreesRegressor(n_estimators=25, max_features=0.5, random_state=3)
    extra.fit(rows, rows[:, 0] - rows[:, 1] ** 2)
    loaded = forest_from_bytes(forest_to_bytes(extra))
    assert type(loaded) is ExtraTreesRegressor and loaded._n_samples_bootstrap is None
    assert np.array_equal(tree_predictions(loaded, rows), tree_predictions(extra, rows))
    assert np.array_equal(loaded.predict(rows), extra.predict(rows))


def test_same_training_gives_the_same_bytes_and_id():
    first, second = _forest()[0], _forest()[0]
    assert forest_to_bytes(first) == forest_to_bytes(second)
    model_id, data = serialize_estimator(first)
    assert serialize_estimator(forest_from_bytes(data))[0] == model_id  # a round trip is stable
    assert serialize_estimator(_forest(seed=4)[0])[0] != model_id


def test_the_same_trees_on_other_inputs_are_another_model():
    forest, features = _forest()
    paper = serialize_estimator(forest, FEATURE_COLUMNS)
    crystal = serialize_estimator(forest, CRYSTAL_COLUMNS)
    assert paper[0] != crystal[0]  # one would overwrite the other's model document
    for _, data in (paper, crystal):
        assert np.array_equal(forest_from_bytes(data).predict(features), forest.predict(features))
    with pytest.raises(ModelBlobError, match="8 inputs"):
        forest_to_bytes(forest, FEATURE_COLUMNS[:3])


class _Payload:
    """What an attacker pickles: unpickling calls os.system with a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_payload_stored_as_a_model_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    joblib.dump(_Payload(marker), buffer)
    attack = buffer.getvalue()
    store, model_id = _stored(attack)  # the id matches: the writer chose it
    with pytest.raises(ModelBlobError, match="not a vtc-fw model blob") as error:
        load_estimator(store, model_id)
    assert error.value.reason == "bad_model_blob"
    assert not marker.exists()
    joblib.load(io.BytesIO(attack))  # what the former load_estimator did: the payload runs
    assert marker.exists()


def test_a_pickle_inside_a_blob_member_is_not_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    data = forest_to_bytes(_forest()[0])
    pickled_values = pickle.dumps(np.array([_Payload(marker)], dtype=object))
    hostile = _edited(data, "trees/00000_values.npy", lambda _: pickled_values)
    with pytest.raises(ModelBlobError):
        forest_from_bytes(hostile)
    object_array = io.BytesIO()
    np.save(object_array, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    hostile = _edited(data, "trees/00000_values.npy", lambda _: object_array.getvalue())
    with pytest.raises(ModelBlobError, match="allow_pickle=False"):
        forest_from_bytes(hostile)
    assert not marker.exists()


def _header_edit(change):
    def edit(content: bytes) -> bytes:
        header = json.loads(content)
        change(header)
        return json.dumps(header).encode()

    return edit


HOSTILE_HEADERS = {
    "class outside the allow-list": (
        lambda h: h.update({"class": "Pipeline"}),
        "not allowed",
    ),
    "unknown constructor argument": (
        lambda h: h["params"].update({"memory": "/tmp"}),
        "unknown RandomForestRegressor parameters: memory",
    ),
    "an object as a parameter": (
        lambda h: h["params"].update({"max_features": {"@module": "os", "@class": "system"}}),
        "not a JSON scalar",
    ),
    "a fitted attribute that is not an integer": (
        lambda h: h["trees"][0]["fitted"].update({"n_features_in_": "8"}),
        "fitted attributes",
    ),
    "another format": (lambda h: h.update({"format": "pickle"}), "not a vtc-fw-forest"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_HEADERS))
def test_hostile_headers_are_refused(case):
    change, message = HOSTILE_HEADERS[case]
    data = forest_to_bytes(_forest()[0])
    with pytest.raises(ModelBlobError, match=message):
        forest_from_bytes(_edited(data, "model.json", _header_edit(change)))


def _nodes_edit(field: str, value: int):
    def edit(content: bytes) -> bytes:
        nodes = np.lib.format.read_array(io.BytesIO(content))
        inner = np.flatnonzero(nodes["left_child"] != -1)[0]
        nodes[field][inner] = value
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, nodes)
        return buffer.getvalue()

    return edit


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("left_child", 10**6, "left child"),
        ("right_child", 0, "right child"),  # a loop back to the root
        ("feature", 99, "feature index"),
    ],
)
def test_trees_that_would_read_out_of_bounds_or_loop_are_refused(field, value, message):
    data = forest_to_bytes(_forest()[0])
    hostile = _edited(data, "trees/00000_nodes.npy", _nodes_edit(field, value))
    with pytest.raises(ModelBlobError, match=message):
        forest_from_bytes(hostile)


def test_a_blob_whose_hash_is_not_its_id_is_refused():
    data = forest_to_bytes(_forest()[0])
    store, model_id = _stored(data)
    other = base64.b64encode(forest_to_bytes(_forest(seed=4)[0])).decode()
    store.update([{"model_id": model_id, "data": other}])
    with pytest.raises(ModelBlobError, match="SHA-256"):
        load_estimator(store, model_id)


def test_only_allow_listed_estimators_are_stored():
    from sklearn.ensemble import GradientBoostingRegressor

    rows = np.random.default_rng(1).random((20, 3))
    boosted = GradientBoostingRegressor(n_estimators=2).fit(rows, rows[:, 0])
    with pytest.raises(ModelBlobError, match="only RandomForestRegressor, ExtraTreesRegressor"):
        forest_to_bytes(boosted)
