"""Where the database is: the one place that reads db.json, my_launchpad.yaml and the environment.

Resolution order of :meth:`DbConfig.load`:

1. an explicit path (a ``db.json``-style store file or a FireWorks ``my_launchpad.yaml``);
2. ``$VTC_FW_DB_FILE``;
3. ``./db.json``, then ``./my_launchpad.yaml`` in the working directory;
4. the embedded default: ``127.0.0.1:27017``, database ``vtc_fw``.

The FireWorks collections and vtc-fw's collections live in the same database. When the
configured server is the local default (or a local one whose db.json names an
``embedded_home``) and nothing answers, the embedded ``secantusd-py`` server is started (see
:mod:`vtc_fw.db.embedded`); any other server is used as configured.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from fireworks import LaunchPad
from maggma.stores import GridFSStore, MongoStore
from pymongo import MongoClient
from pymongo.collection import Collection

from vtc_fw.db.embedded import DEFAULT_HOST, DEFAULT_PORT, EmbeddedServer
from vtc_fw.errors import DbConfigError
from vtc_fw.settings import get_settings

DEFAULT_DATABASE = "vtc_fw"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})

COLLECTION_KEYS: dict[str, str] = {
    "structures": "structure_id",
    "tasks": "task_key",
    "xes": "record_key",
    "features": "record_key",
    "models": "model_id",
    "predictions": "prediction_key",
}
"""The unique key of each shared collection (the maggma ``Store.key``)."""

MODEL_BLOBS = "model_blobs"
"""GridFS bucket of serialised models."""

_SHARED_CLIENTS: dict[tuple[int, str], MongoClient] = {}
"""One client per (process, server address and credentials), closed at exit."""
_SHARED_LOCK = threading.Lock()


@dataclass(frozen=True)
class DbConfig:
    """Connection settings of the vtc-fw database.

    Args:
        host: Server host name (ignored when ``uri`` is set).
        port: Server TCP port (ignored when ``uri`` is set).
        database: Database holding the FireWorks and vtc-fw collections.
        username: User for authentication, if any.
        password: Password for authentication, if any.
        auth_source: Authentication database (default: ``database``).
        uri: A full MongoDB connection string (``host_uri`` in db.json); wins over host/port.
        embedded_home: Data directory root of the embedded server (default ``VTC_FW_HOME``);
            ``embedded_home`` in db.json. Set, it makes a local server on any port embedded.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    database: str = DEFAULT_DATABASE
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    auth_source: str | None = None
    uri: str | None = None
    embedded_home: Path | None = None

    @classmethod
    def load(cls, path: str | Path | None = None) -> DbConfig:
        """The configuration in force (see the module docstring for the order).

        Args:
            path: A db.json-style JSON file or a my_launchpad.yaml; None to search.
        """
        if path is None:
            path = get_settings().db_file or _first_existing(
                Path("db.json"), Path("my_launchpad.yaml")
            )
        return cls() if path is None else cls.from_file(path)

    @classmethod
    def from_file(cls, path: str | Path) -> DbConfig:
        """Read a db.json-style file (``.json``) or a FireWorks launchpad file (``.yaml``).

        Raises:
            DbConfigError: The file is missing, unreadable or not a mapping.
        """
        path = Path(path).expanduser()
        try:
            text = path.read_text()
            settings = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as error:
            raise DbConfigError(f"cannot read database configuration {path}: {error}") from error
        if not isinstance(settings, dict):
            raise DbConfigError(f"{path} does not hold a mapping of settings")
        if path.suffix == ".json":
            return cls.from_db_json(settings)
        return cls.from_launchpad_dict(settings)

    @classmethod
    def from_db_json(cls, settings: dict[str, Any]) -> DbConfig:
        """From atomate's db.json keys (host, port, database, admin_user, host_uri, ...)."""
        return cls(
            host=settings.get("host", DEFAULT_HOST),
            port=int(settings.get("port", DEFAULT_PORT)),
            database=settings.get("database", DEFAULT_DATABASE),
            username=settings.get("admin_user") or settings.get("username"),
            password=settings.get("admin_password") or settings.get("password"),
            auth_source=settings.get("authsource") or settings.get("auth_source"),
            uri=settings.get("host_uri"),
            embedded_home=(
                Path(settings["embedded_home"]).expanduser()
                if settings.get("embedded_home")
                else None
            ),
        )

    @classmethod
    def from_launchpad_dict(cls, settings: dict[str, Any]) -> DbConfig:
        """From the keys of a FireWorks my_launchpad.yaml (host, port, name, uri_mode, ...)."""
        uri_mode = bool(settings.get("uri_mode"))
        return cls(
            host=DEFAULT_HOST if uri_mode else settings.get("host") or DEFAULT_HOST,
            port=int(settings.get("port") or DEFAULT_PORT),
            database=settings.get("name") or DEFAULT_DATABASE,
            username=settings.get("username"),
            password=settings.get("password"),
            auth_source=settings.get("authsource"),
            uri=settings.get("host") if uri_mode else None,
        )

    def with_database(self, database: str) -> DbConfig:
        """The same server, another database."""
        return replace(self, database=database)

    @property
    def is_local_default(self) -> bool:
        """Whether vtc-fw runs this server itself.

        It does for a local host without authentication, on the default port or with an
        explicit ``embedded_home`` (a second embedded server).
        """
        return (
            self.uri is None
            and self.host in LOCAL_HOSTS
            and (self.port == DEFAULT_PORT or self.embedded_home is not None)
            and self.username is None
        )

    def embedded_server(self) -> EmbeddedServer:
        """The embedded server that serves this configuration's address."""
        if self.embedded_home is None:
            return EmbeddedServer(host=DEFAULT_HOST, port=self.port)
        return EmbeddedServer(home=self.embedded_home, host=DEFAULT_HOST, port=self.port)

    def ensure_server(self) -> None:
        """Start the embedded server if this is the local default and nothing answers."""
        if self.is_local_default:
            self.embedded_server().ensure_running()

    def client(self, **kwargs: Any) -> MongoClient:
        """A new pymongo client (starting the embedded server when needed).

        Args:
            kwargs: Extra ``MongoClient`` options, e.g. ``serverSelectionTimeoutMS``.
        """
        self.ensure_server()
        return MongoClient(**self._client_kwargs(), **kwargs)

    def shared_client(self) -> MongoClient:
        """This process's one client for this server, made on first use and closed at exit.

        pymongo clients are thread-safe pools but must not cross a fork, so the client is kept
        per process. The embedded server is started when needed, as by :meth:`client`. Callers
        must not close it (use :meth:`client` for a client of one's own).
        """
        self.ensure_server()
        key = (os.getpid(), json.dumps(self._client_kwargs(), sort_keys=True))
        with _SHARED_LOCK:
            client = _SHARED_CLIENTS.get(key)
            if client is None:
                client = _SHARED_CLIENTS[key] = MongoClient(**self._client_kwargs())
        return client

    def collection(self, name: str, client: MongoClient | None = None) -> Collection:
        """A pymongo collection of this database.

        Args:
            name: Collection name.
            client: Use this client (default: this process's shared one, see
                :meth:`shared_client`).
        """
        return (client or self.shared_client())[self.database][name]

    def store(self, name: str, key: str | None = None, **client_options: Any) -> MongoStore:
        """A maggma ``MongoStore`` (not yet connected) on collection ``name``.

        Args:
            name: Collection name, e.g. ``"tasks"``.
            key: The store key; default from :data:`COLLECTION_KEYS`, else ``"task_id"``.
            client_options: Extra ``MongoClient`` options, e.g. ``serverSelectionTimeoutMS``.
        """
        self.ensure_server()
        return MongoStore(
            database=self.database,
            collection_name=name,
            key=key or COLLECTION_KEYS.get(name, "task_id"),
            mongoclient_kwargs=client_options or None,
            **self._maggma_kwargs(),
        )

    def gridfs_store(self, name: str = MODEL_BLOBS, key: str = "model_id") -> GridFSStore:
        """A maggma ``GridFSStore`` (not yet connected) for large blobs such as models.

        maggma stores each document as JSON: encode raw bytes (e.g. base64) before updating.
        """
        self.ensure_server()
        return GridFSStore(
            database=self.database, collection_name=name, key=key, **self._maggma_kwargs()
        )

    def launchpad(self, strm_lvl: str = "WARNING") -> LaunchPad:
        """A FireWorks ``LaunchPad`` on this database, initialised if the database is new.

        A database without FireWorks' id counters gets them (as ``lpad reset`` would), so
        workflows can be added to it; a database with Fireworks is never reset.

        Args:
            strm_lvl: FireWorks' console log level.
        """
        self.ensure_server()
        launchpad = self._connect_launchpad(strm_lvl)
        if launchpad.fw_id_assigner.count_documents({}) == 0:
            if launchpad.fireworks.count_documents({}) > 0:
                raise DbConfigError(
                    f"database {self.database} holds Fireworks but no FireWorks id counter"
                )
            launchpad.reset("", require_password=False)
        return launchpad

    def _connect_launchpad(self, strm_lvl: str) -> LaunchPad:
        if self.uri is not None:
            return LaunchPad(host=self.uri, name=self.database, uri_mode=True, strm_lvl=strm_lvl)
        return LaunchPad(
            host=self.host,
            port=self.port,
            name=self.database,
            username=self.username,
            password=self.password,
            authsource=self.auth_source,
            strm_lvl=strm_lvl,
        )

    def as_db_json(self) -> dict[str, Any]:
        """The settings in db.json form (what ``from_db_json`` reads)."""
        settings: dict[str, Any] = {"host": self.host, "port": self.port, "database": self.database}
        if self.uri is not None:
            settings["host_uri"] = self.uri
        if self.username is not None:
            settings |= {"admin_user": self.username, "admin_password": self.password}
        if self.auth_source is not None:
            settings["authsource"] = self.auth_source
        if self.embedded_home is not None:
            settings["embedded_home"] = str(self.embedded_home)
        return settings

    def as_launchpad_dict(self) -> dict[str, Any]:
        """The settings in my_launchpad.yaml form (what ``lpad -l`` and ``rlaunch -l`` read)."""
        if self.uri is not None:
            return {"host": self.uri, "name": self.database, "uri_mode": True}
        return {
            "host": self.host,
            "port": self.port,
            "name": self.database,
            "username": self.username,
            "password": self.password,
            "authsource": self.auth_source,
        }

    def write_db_json(self, path: str | Path) -> Path:
        """Write a db.json for this configuration (e.g. for a FWorker's ``db_file``)."""
        path = Path(path)
        path.write_text(json.dumps(self.as_db_json(), indent=2) + "\n")
        return path

    def write_launchpad_yaml(self, path: str | Path) -> Path:
        """Write a my_launchpad.yaml for this configuration."""
        path = Path(path)
        path.write_text(yaml.safe_dump(self.as_launchpad_dict(), sort_keys=False))
        return path

    def _client_kwargs(self) -> dict[str, Any]:
        if self.uri is not None:
            return {"host": self.uri}
        auth = (
            {
                "username": self.username,
                "password": self.password,
                "authSource": self.auth_source or self.database,
            }
            if self.username
            else {}
        )
        return {"host": self.host, "port": self.port, **auth}

    def _maggma_kwargs(self) -> dict[str, Any]:
        if self.uri is not None:
            return {"uri": self.uri}
        auth = (
            {
                "username": self.username,
                "password": self.password,
                "auth_source": self.auth_source or self.database,
            }
            if self.username
            else {}
        )
        return {"host": self.host, "port": self.port, **auth}


def get_launchpad(path: str | Path | None = None) -> LaunchPad:
    """The FireWorks LaunchPad of the configuration in force (see :meth:`DbConfig.load`)."""
    return DbConfig.load(path).launchpad()


def _first_existing(*paths: Path) -> Path | None:
    return next((path for path in paths if path.is_file()), None)


def ensure_unique_index(collection: Collection, field: str) -> None:
    """A unique index on ``field``, unless an index on it already exists.

    A builder may have created a plain one first (maggma's ``ensure_index``); asking for the
    same key with other options fails, so an existing index on the key is kept.
    """
    for index in collection.index_information().values():
        if index.get("key") == [(field, 1)]:
            return
    collection.create_index(field, unique=True)


@atexit.register
def _close_shared_clients() -> None:
    """Close the clients this process made (those inherited over a fork are left alone)."""
    with _SHARED_LOCK:
        for (pid, _), client in list(_SHARED_CLIENTS.items()):
            if pid == os.getpid():
                client.close()
        _SHARED_CLIENTS.clear()
