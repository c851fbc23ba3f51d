"""A stored random forest that cannot run code when it is loaded: JSON and ``.npy`` arrays.

A model blob is a ZIP archive of ``model.json`` (the estimator's class from an allow-list, its
hyperparameters, fitted scalars and the names of its inputs as JSON) and two ``.npy`` arrays per
tree (the node table and the leaf values of ``Tree.__getstate__``), read with
``allow_pickle=False``. Loading builds the forest from these arrays with
:class:`sklearn.tree._tree.Tree`; nothing in the blob names code to import or call, unlike a
pickle (joblib), which a database writer could make run anything.

The bytes are deterministic (members in a fixed order, fixed timestamps, sorted JSON keys), so
the same training gives the same bytes and the same SHA-256 model id. The loaded forest is the
stored one: the same trees, the same predictions, bit for bit.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
from sklearn.tree import DecisionTreeRegressor, ExtraTreeRegressor
from sklearn.tree._tree import Tree

from vtc_fw.errors import ModelBlobError

FORMAT = "vtc-fw-forest"
VERSION = 1
Forest: TypeAlias = RandomForestRegressor | ExtraTreesRegressor
"""The tree ensembles a model can be: the paper's random forest or extremely randomized trees."""
ESTIMATORS: dict[str, tuple[type[Forest], type[DecisionTreeRegressor]]] = {
    "RandomForestRegressor": (RandomForestRegressor, DecisionTreeRegressor),
    "ExtraTreesRegressor": (ExtraTreesRegressor, ExtraTreeRegressor),
}
"""The allow-list: estimator class name → (forest class, tree class)."""
FOREST_FITTED = ("n_features_in_", "n_outputs_", "_n_samples", "_n_samples_bootstrap")
TREE_FITTED = ("n_features_in_", "n_outputs_", "max_features_")
NULLABLE_FITTED = frozenset({"_n_samples_bootstrap"})
"""Fitted integers that are None when unused (no bootstrap, as in extremely randomized trees)."""
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
"""Every member's timestamp: the earliest ZIP allows, so the bytes do not depend on the clock."""
MAX_TREES = 10_000
MAX_BLOB_BYTES = 1 << 30
JSON_SCALARS = (str, int, float, bool, type(None))


def forest_to_bytes(forest: Forest, inputs: Sequence[str] | None = None) -> bytes:
    """The blob of a fitted forest: deterministic ZIP bytes of JSON and ``.npy`` members.

    Args:
        forest: A fitted allow-listed forest.
        inputs: The names of its input columns, in order. They are part of the blob, and so of
            its hash: two models whose trees happen to coincide (a data set where the crystal
            sums equal the site sums) but that read other columns are different models.

    Raises:
        ModelBlobError: The estimator is not an allow-listed class, a hyperparameter is not a
            JSON scalar (e.g. a ``RandomState`` object), or ``inputs`` does not name each input.
    """
    name = type(forest).__name__
    if name not in ESTIMATORS or type(forest) is not ESTIMATORS[name][0]:
        raise ModelBlobError(f"cannot store a {name}: only {', '.join(ESTIMATORS)} models")
    if inputs is not None and len(inputs) != forest.n_features_in_:
        raise ModelBlobError(
            f"{len(inputs)} input names for a forest of {forest.n_features_in_} inputs"
        )
    header = {
        "format": FORMAT,
        "version": VERSION,
        "class": name,
        "params": _scalars(forest.get_params(deep=False)),
        "fitted": _scalars({key: getattr(forest, key) for key in FOREST_FITTED}),
        "trees": [_tree_header(tree) for tree in forest.estimators_],
        **({"inputs": [str(name) for name in inputs]} if inputs is not None else {}),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        _write(archive, "model.json", json.dumps(header, sort_keys=True).encode())
        for index, tree in enumerate(forest.estimators_):
            state = tree.tree_.__getstate__()
            _write(archive, _member(index, "nodes"), _npy_bytes(_zero_padded(state["nodes"])))
            _write(archive, _member(index, "values"), _npy_bytes(state["values"]))
    return buffer.getvalue()


def forest_from_bytes(data: bytes) -> Forest:
    """The forest of a blob written by :func:`forest_to_bytes`; never unpickles anything.

    Raises:
        ModelBlobError: The bytes are not such a blob, name a class outside the allow-list,
            or hold trees whose arrays are inconsistent (a child or feature index out of range).
    """
    if len(data) > MAX_BLOB_BYTES:
        raise ModelBlobError(f"model blob of {len(data)} bytes is larger than {MAX_BLOB_BYTES}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            header = json.loads(archive.read("model.json"))
            return _forest(header, archive)
    except ModelBlobError:
        raise
    # a damaged or hostile blob raises anything from BadZipFile to KeyError or TypeError
    except Exception as error:
        raise ModelBlobError(f"not a vtc-fw model blob: {type(error).__name__}: {error}") from error


def _forest(header: dict[str, Any], archive: zipfile.ZipFile) -> Forest:
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise ModelBlobError(f"not a {FORMAT} v{VERSION} model blob")
    if header.get("class") not in ESTIMATORS:
        raise ModelBlobError(f"model class {header.get('class')!r} is not allowed")
    forest_class, tree_class = ESTIMATORS[header["class"]]
    if not 0 < len(header["trees"]) <= MAX_TREES:
        raise ModelBlobError(f"a forest of {len(header['trees'])} trees")
    forest = forest_class(**_checked_params(header["params"], forest_class))
    _set_fitted(forest, header["fitted"], FOREST_FITTED)
    forest.estimator_ = tree_class()
    forest.estimators_ = [
        _tree(tree_header, index, archive, tree_class)
        for index, tree_header in enumerate(header["trees"])
    ]
    return forest


def _tree_header(tree: DecisionTreeRegressor) -> dict[str, Any]:
    state = tree.tree_.__getstate__()
    return {
        "params": _scalars(tree.get_params(deep=False)),
        "fitted": _scalars({key: getattr(tree, key) for key in TREE_FITTED}),
        "max_depth": int(state["max_depth"]),
        "node_count": int(state["node_count"]),
    }


def _tree(
    header: dict[str, Any], index: int, archive: zipfile.ZipFile, tree_class: type
) -> DecisionTreeRegressor:
    tree = tree_class(**_checked_params(header["params"], tree_class))
    _set_fitted(tree, header["fitted"], TREE_FITTED)
    nodes = _read_npy(archive, _member(index, "nodes"))
    values = _read_npy(archive, _member(index, "values"))
    _check_tree(index, int(header["node_count"]), nodes, values, tree)
    tree.tree_ = Tree(tree.n_features_in_, np.ones(tree.n_outputs_, dtype=np.intp), tree.n_outputs_)
    tree.tree_.__setstate__(
        {
            "max_depth": int(header["max_depth"]),
            "node_count": int(header["node_count"]),
            "nodes": nodes,
            "values": values,
        }
    )
    return tree


def _check_tree(
    index: int, node_count: int, nodes: np.ndarray, values: np.ndarray, tree: Any
) -> None:
    """Refuse arrays that would make prediction read outside them or loop forever.

    sklearn's builder numbers a node's children after the node, so a valid tree has every
    child index above its parent's and below ``node_count``, or both children -1 (a leaf).
    """
    template = Tree(1, np.ones(1, dtype=np.intp), 1).__getstate__()["nodes"]
    problem = None
    if nodes.dtype != template.dtype or nodes.shape != (node_count,) or node_count < 1:
        problem = "its node table has the wrong type or length"
    elif values.shape != (node_count, tree.n_outputs_, 1) or not np.isfinite(values).all():
        problem = "its leaf values have the wrong shape or are not finite"
    else:
        problem = _structure_problem(nodes, tree.n_features_in_)
    if problem is not None:
        raise ModelBlobError(f"tree {index} of the model blob is invalid: {problem}")


def _structure_problem(nodes: np.ndarray, n_features: int) -> str | None:
    own = np.arange(len(nodes))
    left, right = nodes["left_child"], nodes["right_child"]
    leaf = (left == -1) & (right == -1)
    inner = ~leaf
    if not ((left[inner] > own[inner]) & (left[inner] < len(nodes))).all():
        return "a left child index is out of order or range"
    if not ((right[inner] > own[inner]) & (right[inner] < len(nodes))).all():
        return "a right child index is out of order or range"
    if not ((nodes["feature"][inner] >= 0) & (nodes["feature"][inner] < n_features)).all():
        return "a split feature index is out of range"
    return None


def _checked_params(params: dict[str, Any], cls: type) -> dict[str, Any]:
    """Constructor arguments that ``cls`` has, each a JSON scalar."""
    allowed = set(cls().get_params(deep=False))
    unknown = set(params) - allowed
    if unknown:
        raise ModelBlobError(f"unknown {cls.__name__} parameters: {', '.join(sorted(unknown))}")
    return _scalars(params)


def _set_fitted(estimator: Any, fitted: dict[str, Any], names: tuple[str, ...]) -> None:
    if set(fitted) != set(names) or not all(
        isinstance(fitted[n], int) or (fitted[n] is None and n in NULLABLE_FITTED) for n in names
    ):
        raise ModelBlobError(f"fitted attributes {sorted(fitted)} are not the integers {names}")
    for name in names:
        setattr(estimator, name, fitted[name])


def _scalars(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with numpy scalars as Python ones; anything but a JSON scalar is refused."""
    plain = {
        key: value.item() if isinstance(value, np.generic) else value
        for key, value in values.items()
    }
    for key, value in plain.items():
        if not isinstance(value, JSON_SCALARS):
            raise ModelBlobError(f"parameter {key} is a {type(value).__name__}, not a JSON scalar")
    return plain


def _zero_padded(nodes: np.ndarray) -> np.ndarray:
    """The node table with its padding bytes zeroed (sklearn leaves them uninitialised memory)."""
    clean = np.zeros(nodes.shape, dtype=nodes.dtype)
    for name in nodes.dtype.names or ():
        clean[name] = nodes[name]
    return clean


def _member(index: int, field: str) -> str:
    return f"trees/{index:05d}_{field}.npy"


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _read_npy(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    with archive.open(name) as member:
        return np.lib.format.read_array(io.BytesIO(member.read()), allow_pickle=False)


def _write(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data, compresslevel=6)
