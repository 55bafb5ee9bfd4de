"""Shared fixtures: a real vendor simulator over HTTP, a real PostgreSQL, an Airflow home."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / ".test-run"
RUN_DIR.mkdir(exist_ok=True)

# Airflow reads its settings at import: fix them before anything imports airflow.
os.environ["AIRFLOW_HOME"] = str(RUN_DIR / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")

sys.path.insert(0, str(ROOT / "plugins"))
from callfilter_dev import devenv  # noqa: E402

APP_ID = "test-app"
APP_SECRET = "test-secret-d0n7-l0g-m3"


class Simulator:
    """A running `python -m callfilter_dev.simulator` process."""

    def __init__(self, *options: str) -> None:
        self.port = devenv.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_path = RUN_DIR / f"simulator-{self.port}.log"
        self.process = devenv.start_simulator(self.port, APP_ID, APP_SECRET, *options, log_path=log_path)

    def stats(self) -> dict:
        return requests.get(self.url + "/_sim/stats", timeout=5).json()

    def conn_uri(self) -> str:
        return devenv.callcenter_conn(self.port, APP_ID, APP_SECRET)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def start_simulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Simulator]]:
    """Start a simulator with the given options; its connection becomes `callcenter_default`."""
    started: list[Simulator] = []

    def start(*options: str) -> Simulator:
        sim = Simulator(*options)
        started.append(sim)
        monkeypatch.setenv("AIRFLOW_CONN_CALLCENTER_DEFAULT", sim.conn_uri())
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(start_simulator: Callable[..., Simulator]) -> Simulator:
    """An instant-dialing simulator without faults or rate limit."""
    return start_simulator("--call-seconds", "0", "--rate-limit", "0")


@pytest.fixture(scope="session")
def database() -> Iterator[devenv.Database]:
    """A real PostgreSQL: CALLFILTER_DATABASE_URL's server, else an embedded one; a schema'd template db."""
    server = devenv.Database(RUN_DIR / "pgdata")
    server.create_database("callfilter_template")
    with server.connect("callfilter_template") as conn:
        devenv.apply_schema(conn)
    yield server
    if server.server is not None:
        server.server.cleanup()


@contextlib.contextmanager
def module_database(database: devenv.Database, name: str) -> Iterator[tuple[devenv.Database, str, Any]]:
    """A stack test module's own business database `name` (from the schema'd template), with a dict-row
    autocommit connection: (server, name, connection)."""
    from psycopg.rows import dict_row

    database.create_database(name, template="callfilter_template")
    with database.connect(name, row_factory=dict_row, autocommit=True) as conn:
        yield database, name, conn


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """An Airflow home with its metadata database migrated, shared by the tests that run DAGs."""
    home = RUN_DIR / "airflow"
    env = devenv.airflow_env(home, RUN_DIR / "files", "{}", "{}")
    devenv.prepare_airflow(env)
    return home


_db_names = itertools.count(1)


@pytest.fixture
def db(database: devenv.Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[DbHandle]:
    """A fresh business database with the schema applied; it is also the `callfilter_db` connection."""
    name = f"callfilter_test_{os.getpid()}_{next(_db_names)}"
    database.create_database(name, template="callfilter_template")
    monkeypatch.setenv("AIRFLOW_CONN_CALLFILTER_DB", database.airflow_conn(name))
    from psycopg.rows import dict_row

    with database.connect(name, row_factory=dict_row, autocommit=True) as conn:
        yield DbHandle(database, name, conn)


class DbHandle:
    def __init__(self, server: devenv.Database, name: str, conn) -> None:
        self.server = server
        self.name = name
        self.conn = conn

    def rows(self, query: str, params: tuple | dict | None = None) -> list[dict]:
        return self.conn.execute(query, params).fetchall()

    def value(self, query: str, params: tuple | dict | None = None):
        row = self.conn.execute(query, params).fetchone()
        return next(iter(row.values())) if row else None

    def conn_uri(self) -> str:
        return self.server.airflow_conn(self.name)


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from callfilter.files import Storage

    monkeypatch.setenv("CALLFILTER_FILES_ROOT", str(tmp_path / "files"))
    return Storage()
