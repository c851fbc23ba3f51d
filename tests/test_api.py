"""The screening API and pages against the test server, on real builder output.

The database holds what the real builders make of ``tests/data/builders_recorded.json.gz``
(FEFF tasks of rock-salt NiO and CoO stretched along c by 0-5 %, one failed task), plus two
copies of real predictions flagged out of the training domain and σ-derived fields on one
``xes`` document, so that every filter has something to keep and something to drop.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pymatgen.core import Structure
from test_builders import TINY_TRAINING, store_recorded

from vtc_fw.api import create_app
from vtc_fw.api.operators import Filter, FilterQuery
from vtc_fw.api.resources import RESOURCE_COLLECTIONS
from vtc_fw.builders import nightly_builders, run_builders
from vtc_fw.cli import main
from vtc_fw.db.config import DbConfig
from vtc_fw.db.embedded import free_port

OUT_OF_DOMAIN = ("test:NiO-c5pct#copy:Ni", "test:CoO-c5pct#copy:Co")
SIGMA = {
    "has_sigma": True,
    "sams_max": 0.4321,
    "a_inv": 0.1234,
    "best_pair": {"value": 0.3, "directions": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]},
}
"""σ fields of the xes document's form, set on one record (its smoke task has no σ)."""


def build_screening_database(config: DbConfig) -> None:
    """Recorded structures and tasks → the real builders → a few marked copies."""
    store_recorded(config)
    run_builders(nightly_builders(config, preset="smoke", **TINY_TRAINING))
    predictions = config.collection("predictions")
    for key in OUT_OF_DOMAIN:
        original = predictions.find_one({"record_key": key.replace("#copy", "")}, {"_id": 0})
        predictions.insert_one(
            {
                **original,
                "record_key": key,
                "prediction_key": f"{key}:{original['model_id']}",
                "in_domain": False,
            }
        )
    config.collection("xes").update_one({"record_key": "test:NiO-c4pct:Ni"}, {"$set": SIGMA})


@pytest.fixture(scope="module")
def screening_db(mongo_server: DbConfig) -> Iterator[DbConfig]:
    """A database of the module's own, built once."""
    config = mongo_server.with_database(f"vtc_api_{uuid.uuid4().hex[:10]}")
    build_screening_database(config)
    yield config
    client = config.client()
    client.drop_database(config.database)
    client.close()


@pytest.fixture(scope="module")
def client(screening_db: DbConfig) -> TestClient:
    return TestClient(create_app(screening_db), raise_server_exceptions=False)


def all_predictions(client: TestClient, **params) -> list[dict]:
    response = client.get("/api/predictions/", params={"_limit": 1000, **params})
    assert response.status_code == 200, response.text
    return response.json()["data"]


# --- REST: envelope, filters, sort, paging ----------------------------------------------------


def test_envelope_counts_every_match_and_pages_through_them(client):
    response = client.get("/api/predictions/", params={"_limit": 4, "_sort_fields": "record_key"})
    body = response.json()
    assert response.headers["content-type"] == "application/json"
    assert set(body) >= {"data", "meta"} and len(body["data"]) == 4
    assert body["meta"]["total_doc"] == 13 + len(OUT_OF_DOMAIN)
    pages = [
        client.get(
            "/api/predictions/",
            params={"_page": page, "_per_page": 5, "_sort_fields": "record_key"},
        ).json()["data"]
        for page in (1, 2, 3, 4)
    ]
    keys = [doc["record_key"] for page in pages for doc in page]
    assert [len(page) for page in pages] == [5, 5, 5, 0]
    assert keys == sorted(keys) and len(set(keys)) == 15


def test_filters_keep_exactly_the_matching_documents(client):
    everything = all_predictions(client, _fields="record_key,element,sams,sams_std,in_domain")
    cobalt = all_predictions(client, element="Co")
    assert {doc["element"] for doc in cobalt} == {"Co"}
    assert len(cobalt) == sum(doc["element"] == "Co" for doc in everything)
    strong = all_predictions(client, sams_min=0.1, sams_max=0.5)
    expected = {d["record_key"] for d in everything if 0.1 <= d["sams"] <= 0.5}
    assert {d["record_key"] for d in strong} == expected and expected
    confident = all_predictions(client, sams_std_max=0.01)
    assert {d["record_key"] for d in confident} == {
        d["record_key"] for d in everything if d["sams_std"] <= 0.01
    }
    outside = all_predictions(client, in_domain="false")
    assert {d["record_key"] for d in outside} == set(OUT_OF_DOMAIN)
    latest = all_predictions(client, model_id="latest", in_domain="true")
    assert len(latest) == 13 and len({d["model_id"] for d in latest}) == 1
    count = client.get("/api/predictions/", params={"element": "Ni", "in_domain": "true"})
    assert count.json()["meta"]["total_doc"] == 7


def test_sort_orders_by_the_predicted_sams(client):
    descending = [d["sams"] for d in all_predictions(client, _sort_fields="-sams")]
    ascending = [d["sams"] for d in all_predictions(client, _sort_fields="sams")]
    assert descending == sorted(descending, reverse=True) and ascending == descending[::-1]


def test_xes_serves_feff_sams_and_the_optional_sigma_fields(client):
    cubic = client.get("/api/xes/", params={"record_key": "test:NiO-c0pct:Ni"}).json()["data"]
    # a cubic site is isotropic: its SAMS vanishes; computed without σ, its σ fields are null
    assert cubic[0]["sams"] < 1e-3 and cubic[0]["sams_max"] is None
    assert cubic[0]["has_sigma"] is False
    anisotropic = client.get("/api/xes/", params={"sams_min": 0.1, "_sort_fields": "-sams"})
    data = anisotropic.json()["data"]
    assert data and all(d["sams"] >= 0.1 for d in data)
    assert [d["sams"] for d in data] == sorted((d["sams"] for d in data), reverse=True)
    with_sigma = client.get("/api/xes/", params={"sams_max_min": 0.4}).json()["data"]
    assert [d["record_key"] for d in with_sigma] == ["test:NiO-c4pct:Ni"]
    assert {k: with_sigma[0][k] for k in SIGMA} == SIGMA
    failed = client.get("/api/xes/", params={"state": "failed"}).json()["data"]
    assert [d["record_key"] for d in failed] == ["test:NiO-c6pct:Ni"]


def test_features_structures_and_models(client):
    features = client.get("/api/features/", params={"QAMS_max": 1e-9, "element": "Ni"})
    # only the unstretched (cubic) rock salt has a vanishing quadrupole anisotropy
    assert [d["record_key"] for d in features.json()["data"]] == ["test:NiO-c0pct:Ni"]
    structures = client.get("/api/structures/", params={"structure_id": "test:CoO-c3pct"}).json()
    assert structures["meta"]["total_doc"] == 1
    structure = Structure.from_dict(structures["data"][0]["structure"])
    assert structure.composition.reduced_formula == "CoO"
    (model,) = client.get("/api/models/").json()["data"]
    assert -1 <= model["r2_test"] <= 1 and model["importances"]
    one = client.get(f"/api/models/{model['model_id']}/").json()["data"][0]
    assert one["model_id"] == model["model_id"] and len(one["test_true"]) == len(
        one["test_predicted"]
    )


def test_openapi_documents_every_query_parameter(client):
    schema = client.get("/api/openapi.json").json()
    for name in RESOURCE_COLLECTIONS:
        parameters = schema["paths"][f"/api/{name}/"]["get"]["parameters"]
        assert all(p.get("description") for p in parameters), name
        names = {p["name"] for p in parameters}
        assert {"_sort_fields", "_fields", "_page", "_per_page", "_skip", "_limit"} <= names
    predictions = {p["name"] for p in schema["paths"]["/api/predictions/"]["get"]["parameters"]}
    assert {"element", "sams_min", "sams_max", "sams_std_max", "in_domain", "model_id"} <= (
        predictions
    )
    reference = client.get("/api/docs")
    assert reference.status_code == 200 and "sams_std_max" in reference.text
    assert "cdn" not in reference.text.lower()


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sams_min": "abc"}, "sams_min"),
        ({"sams_min": "nan"}, "finite"),
        ({"element": "Xx"}, "element must be one of"),
        ({"in_domain": "perhaps"}, "in_domain"),
        ({"_limit": 0}, "_limit"),
        ({"_limit": 100000}, "_limit"),
        ({"_page": 0}, "_page"),
        ({"_sort_fields": "-colour"}, "cannot sort by"),
        ({"_fields": "record_key,colour"}, "unknown field"),
        ({"colour": "red"}, "cannot be used"),
    ],
)
def test_malformed_parameters_are_a_400_with_a_message(client, params, message):
    response = client.get("/api/predictions/", params=params)
    assert response.status_code == 400
    body = response.json()
    assert message in body["detail"] and body["errors"][0]["code"] == 400
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "params",
    [
        {"record_key": '{"$ne": null}'},
        {"formula": "$where"},
        {"element": "{'$where': 'sleep(1000)'}"},
        {"record_key[$ne]": "x"},
        {"_sort_fields": "$where"},
        {"_fields": "$where"},
        {"_fields": "record_key.$where"},
        {"model_id": '{"$function": {"body": "return 1", "args": [], "lang": "js"}}'},
    ],
)
def test_injection_attempts_never_reach_mongo(client, params):
    response = client.get("/api/predictions/", params=params)
    assert response.status_code == 400, response.text
    assert "Traceback" not in response.text


def test_no_filter_value_becomes_an_operator():
    operator = FilterQuery(
        [
            Filter("record_key", "record_key", "text", "key"),
            Filter("element", "element", "element", "element"),
            Filter("sams_min", "sams", "min", "low"),
        ]
    )
    assert operator.query(record_key="oqmd-icsd:Fe2O3#12:Fe", element=None, sams_min=0.2) == {
        "criteria": {"record_key": "oqmd-icsd:Fe2O3#12:Fe", "sams": {"$gte": 0.2}}
    }
    for hostile in ("$where", "a b", "x;y", '{"$gt": ""}', "'", "a\\u0000"):
        with pytest.raises(Exception, match="may hold") as raised:
            operator.query(record_key=hostile, element=None, sams_min=None)
        assert getattr(raised.value, "status_code", None) == 400


def test_only_get_is_answered(client):
    for method in ("post", "put", "delete", "patch"):
        response = client.request(method, "/api/predictions/", json={"sams": 1})
        assert response.status_code == 405


def test_unknown_documents_are_a_404(client):
    api = client.get("/api/predictions/no-such-key/")
    assert api.status_code == 404 and "not found" in api.json()["detail"]
    page = client.get("/records/" + quote("oqmd-icsd:Nothing#1:Fe"))
    assert page.status_code == 404
    assert (
        "no record" in page.text
        and "oqmd-icsd:Nothing#1:Fe" in page.text
        and "Traceback" not in page.text
    )
    assert client.get("/model", params={"model_id": "0" * 64}).status_code == 404
    assert client.get("/nowhere").status_code == 404


def test_an_unreachable_database_is_a_503():
    dead = DbConfig(uri=f"mongodb://127.0.0.1:{free_port()}/", database="vtc_fw")
    client = TestClient(
        create_app(dead, server_selection_timeout_ms=300), raise_server_exceptions=False
    )
    api = client.get("/api/predictions/", params={"element": "Fe"})
    assert api.status_code == 503 and "does not answer" in api.json()["detail"]
    for path in ("/", "/records/x:Fe", "/model", "/api/models/abc/"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert "does not answer" in response.text and "Traceback" not in response.text


# --- pages ---------------------------------------------------------------------------------


def test_candidates_page_filters_counts_and_downloads(client):
    page = client.get("/", params={"element": "Co", "sort": "-sams"})
    assert page.status_code == 200
    assert '<span class="big" id="total">6</span>' in page.text
    assert "test:CoO-c5pct:Co" in page.text and "test:NiO-c5pct:Ni" not in page.text
    everything = client.get("/").text
    assert '<span class="pill">Co 6</span>' in everything
    assert '<span class="pill">Ni 7</span>' in everything
    rows = list(csv.DictReader(io.StringIO(client.get("/candidates.csv").text)))
    assert len(rows) == 13  # in-domain records of the newest model, as on the page
    sams = [float(row["sams"]) for row in rows]
    assert sams == sorted(sams, reverse=True)
    # the FEFF column: every record whose task succeeded, none for the failed one
    feff = {row["record_key"]: row["feff_sams"] for row in rows}
    assert feff["test:NiO-c6pct:Ni"] == "" and all(
        value for key, value in feff.items() if key != "test:NiO-c6pct:Ni"
    )
    by_feff = client.get("/candidates.json", params={"sort": "-feff_sams"}).json()
    values = [row["feff_sams"] for row in by_feff["data"]]
    assert values[-1] is None and values[:-1] == sorted(values[:-1], reverse=True)
    outside = client.get("/candidates.json", params={"in_domain": "false"}).json()
    assert {row["record_key"] for row in outside["data"]} == set(OUT_OF_DOMAIN)
    assert client.get("/", params={"sams_min": "lots"}).status_code == 400
    assert client.get("/", params={"sort": "colour"}).status_code == 400


def test_record_page_spectra_and_structure_file(client):
    key = "test:NiO-c4pct:Ni"
    page = client.get(f"/records/{key}")
    assert page.status_code == 200
    sams = client.get("/api/xes/", params={"record_key": key}).json()["data"][0]["sams"]
    assert f"{sams:.3f}" in page.text and "sams_max" in page.text
    image = client.get(f"/records/{key}/spectra.png")
    assert image.headers["content-type"] == "image/png" and image.content[:4] == b"\x89PNG"
    cif = client.get(f"/records/{key}/structure.cif")
    structure = Structure.from_str(cif.text, fmt="cif")
    assert structure.composition.reduced_formula == "NiO"
    # rock salt stretched along c is tetragonal; unstretched it is cubic
    assert "I4/mmm (139), tetragonal" in page.text
    assert "Fm-3m (225), cubic" in client.get("/records/test:NiO-c0pct:Ni").text
    # the failed FEFF record has a prediction and features, no spectra
    failed = client.get("/records/test:NiO-c6pct:Ni")
    assert failed.status_code == 200 and "FEFF did not give spectra" in failed.text
    assert client.get("/records/test:NiO-c6pct:Ni/spectra.png").status_code == 404


def test_model_page_shows_metrics_and_figures(client):
    page = client.get("/model")
    assert page.status_code == 200 and "test split" in page.text
    assert "Random forest trained with the paper's protocol (search space" in page.text
    (model,) = client.get("/api/models/").json()["data"]
    assert f"{model['r2_test']:.3f}" in page.text
    figure = client.get(f"/model/{model['model_id']}/predicted_vs_true.png")
    assert figure.status_code == 200 and figure.content[:4] == b"\x89PNG"


# --- the command ---------------------------------------------------------------------------


def test_serve_refuses_a_public_address_without_the_flag(monkeypatch, screening_db, tmp_path):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.update(kwargs))
    db_file = str(screening_db.write_db_json(tmp_path / "db.json"))
    runner = CliRunner()
    refused = runner.invoke(main, ["serve", "--host", "0.0.0.0", "--db-file", db_file])
    assert refused.exit_code != 0 and "--public" in refused.output and not started
    public = runner.invoke(main, ["serve", "--host", "0.0.0.0", "--public", "--db-file", db_file])
    assert public.exit_code == 0 and "WARNING" in public.stderr
    assert started["host"] == "0.0.0.0"
    local = runner.invoke(main, ["serve", "--port", "8123", "--db-file", db_file])
    assert local.exit_code == 0 and "WARNING" not in local.stderr
    assert (started["host"], started["port"]) == ("127.0.0.1", 8123)


def test_candidates_snapshot_follows_new_models_and_feff_results(monkeypatch):
    from datetime import UTC, datetime, timedelta

    from maggma.stores import MemoryStore

    from vtc_fw.api import candidates
    from vtc_fw.api.candidates import CandidateQuery, CandidateTable

    stores = {}
    for name, key in [("models", "model_id"), ("predictions", "prediction_key")]:
        stores[name] = MemoryStore(collection_name=name, key=key)
    stores["xes"] = MemoryStore(collection_name="xes", key="record_key")
    stores["features"] = MemoryStore(collection_name="features", key="record_key")
    for store in stores.values():
        store.connect()
    start = datetime.now(UTC)

    def predict(model_id: str, when: datetime, sams: float) -> None:
        stores["models"].update(
            [{"model_id": model_id, "state": "successful", "last_updated": when}]
        )
        stores["predictions"].update(
            [
                {
                    "prediction_key": f"s{i}:Fe:{model_id}",
                    "record_key": f"s{i}:Fe",
                    "element": "Fe",
                    "model_id": model_id,
                    "state": "successful",
                    "sams": sams + i / 10,
                    "sams_std": 0.01,
                    "in_domain": True,
                }
                for i in range(3)
            ]
        )

    def feff(record_key: str, sams: float, when: datetime) -> None:
        document = {"record_key": record_key, "state": "successful", "sams": sams}
        stores["xes"].update([{**document, "last_updated": when}])

    predict("m1", start, 0.1)
    feff("s0:Fe", 0.5, start)
    table = CandidateTable(stores)
    first = table.page(CandidateQuery())
    assert (first.total, first.computed, first.model["model_id"]) == (3, 1, "m1")
    feff("s1:Fe", 0.6, start + timedelta(minutes=1))
    assert table.page(CandidateQuery()).computed == 1  # checked again only after a while
    monkeypatch.setattr(candidates, "CHECK_INTERVAL_S", 0.0)
    assert table.page(CandidateQuery()).computed == 2
    predict("m2", start + timedelta(hours=1), 0.3)
    newest = table.page(CandidateQuery(sort="-feff_sams"))
    assert newest.model["model_id"] == "m2"
    assert [row["feff_sams"] for row in newest.rows] == [0.6, 0.5, None]
    assert newest.rows[0]["sams"] == pytest.approx(0.4)
