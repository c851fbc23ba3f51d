"""The application factory: REST resources under ``/api``, server-rendered pages beside them.

Read-only by construction: every route is a GET; the stores are only ever queried. Errors never
show a stack trace: a rejected parameter is a 400, an unknown document a 404, a database that
does not answer a 503, each as JSON under ``/api`` and as a page elsewhere.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from maggma.core import Store
from pymongo.errors import ConnectionFailure, NetworkTimeout, PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vtc_fw import __version__
from vtc_fw.api import formatting
from vtc_fw.api.candidates import CandidateTable
from vtc_fw.api.resources import RESOURCE_COLLECTIONS, build_resources
from vtc_fw.builders.train import latest_model
from vtc_fw.db.config import DbConfig

PACKAGE_DIR = Path(__file__).parent
SERVER_SELECTION_TIMEOUT_MS = 3000
"""How long a request waits for an unreachable database before its 503."""

PING_INTERVAL_S = 5.0
"""An API request pings the database first when it has not answered for this long."""

log = logging.getLogger(__name__)

DESCRIPTION = """\
Read-only access to the vtc-fw screening database: the builders' `predictions`, `xes`,
`features`, `structures` and `models` collections. Every list endpoint answers with the
Materials Project envelope: `data` (the documents) and `meta` (`total_doc`: how many match,
`max_limit`, `default_fields`). Filters are plain parameters (`element=Fe&sams_min=0.2`);
unknown parameters, unknown fields and out-of-range values are answered with a 400.
"""


@dataclass
class ServerState:
    """What the pages share: the stores, the candidates table, templates, a figure cache."""

    config: DbConfig
    stores: dict[str, Store]
    templates: Jinja2Templates
    figure_dir: Path
    candidates: CandidateTable = field(init=False)
    figure_lock: Lock = field(default_factory=Lock)
    last_answer: float = float("-inf")

    def __post_init__(self) -> None:
        self.candidates = CandidateTable(self.stores)

    def check_database(self) -> None:
        """Ping the database unless it answered in the last :data:`PING_INTERVAL_S` seconds.

        The API's queries run under a 20 s pymongo timeout, which would otherwise also be
        how long a request waits for a server that is down before its 503.

        Raises:
            ServerSelectionTimeoutError: Nothing answers (the handlers make it a 503).
        """
        now = time.monotonic()
        if now - self.last_answer < PING_INTERVAL_S:
            return
        self.stores["models"]._collection.database.command("ping")
        self.last_answer = now

    def newest_model_id(self) -> str:
        """The newest successful model's id (404 when there is none)."""
        model = latest_model(self.stores["models"])
        if model is None:
            raise StarletteHTTPException(404, "no trained model in the database")
        return model["model_id"]


def create_app(
    config: DbConfig,
    *,
    server_selection_timeout_ms: int = SERVER_SELECTION_TIMEOUT_MS,
    figure_dir: Path | None = None,
) -> FastAPI:
    """The vtc-fw screening application on ``config``'s database.

    Args:
        config: Where the database is (the embedded server is started if it is the local
            default and not running).
        server_selection_timeout_ms: How long a request waits for the database before 503.
        figure_dir: Cache of rendered model figures (default: a new temporary directory).
    """
    stores: dict[str, Store] = {
        name: config.store(
            name,
            serverSelectionTimeoutMS=server_selection_timeout_ms,
            connectTimeoutMS=server_selection_timeout_ms,
        )
        for name in (*RESOURCE_COLLECTIONS, "tasks")
    }
    templates = Jinja2Templates(directory=PACKAGE_DIR / "templates")
    formatting.register(templates.env)
    state = ServerState(
        config=config,
        stores=stores,
        templates=templates,
        figure_dir=figure_dir or Path(tempfile.mkdtemp(prefix="vtc_fw_figures_")),
    )
    app = FastAPI(
        title="vtc-fw screening API",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.vtc = state
    for store in stores.values():
        store.connect()  # lazy: pymongo connects on the first query
    reachable = Depends(state.check_database)
    for name, resource in build_resources(stores, state.newest_model_id).items():
        app.include_router(resource.router, prefix=f"/api/{name}", dependencies=[reachable])
    from vtc_fw.api.pages import router  # the pages need the app's state, not the reverse

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")
    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_parameter)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(PyMongoError, _database_error)
    app.add_exception_handler(Exception, _internal_error)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def error_response(request: Request, status: int, message: str) -> Response:
    """The error as the MP envelope (``/api``) or as a page."""
    if _is_api(request):
        body = {"data": None, "errors": [{"code": status, "message": message}], "detail": message}
        return JSONResponse(body, status_code=status)
    state: ServerState = request.app.state.vtc
    return state.templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )


async def _invalid_parameter(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problems = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "query")
        problems.append(f"{where}: {problem.get('msg', 'invalid')}")
    return error_response(request, 400, "invalid query parameter: " + "; ".join(problems))


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    cause = error.__context__
    if error.status_code in (500, 504) and _unreachable(cause):
        return _unavailable(request)
    message = str(error.detail) if error.detail else "error"
    if error.status_code == 404 and message == "Not Found":
        message = f"nothing at {request.url.path}"
    return error_response(request, error.status_code, message)


async def _database_error(request: Request, error: Exception) -> Response:
    if _unreachable(error):
        return _unavailable(request)
    log.error("database error on %s: %s", request.url.path, error)
    return error_response(request, 500, "the database could not answer this request")


async def _internal_error(request: Request, error: Exception) -> Response:
    log.exception("internal error on %s", request.url.path, exc_info=error)
    return error_response(request, 500, "internal error (logged on the server)")


def _unreachable(error: Any) -> bool:
    """Whether ``error`` says the database cannot be reached (not merely a slow query)."""
    return isinstance(error, ConnectionFailure) and not isinstance(error, NetworkTimeout)


def _unavailable(request: Request) -> Response:
    state: ServerState = request.app.state.vtc
    return error_response(
        request,
        503,
        f"the database at {database_address(state.config)} does not answer; start it "
        "(vtc-fw db start) or check the --db-file given to vtc-fw serve, then reload",
    )


def database_address(config: DbConfig) -> str:
    """``host:port`` of the database, never the credentials a URI may hold."""
    if config.uri is None:
        return f"{config.host}:{config.port}"
    parts = urlsplit(config.uri)
    return parts.netloc.rpartition("@")[2] or parts.path
