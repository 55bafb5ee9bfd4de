"""The real Airflow components as separate processes, driven through Airflow's REST API.

For slow end-to-end tests and benchmarks::

    env = devenv.airflow_env(home, files_root, db_conn, callcenter)
    with AirflowStack(tmp_path / "stack", env, pools={"callcenter": 5}) as stack:
        stack.wait_for_dag("call_filter")
        run_id = stack.trigger("call_filter", {"batchid": "B1"})
        assert stack.wait_for_run("call_filter", run_id, timeout=300) == "success", stack.logs()

`start()` migrates a fresh metadata database (a copy of a migrated template database, kept on the server
per Airflow version), then runs `airflow api-server`, `scheduler`, `dag-processor` and `triggerer` (plus
`celery worker`s for a CeleryExecutor), each in its own process group with its output in
`workdir/logs/<component>.log`. The REST API authenticates as a SimpleAuthManager admin whose password the
stack writes before the api-server starts. `kill(component)` SIGKILLs one with its task processes, as when
its machine dies; `restart(component)` starts it again. `stop()` ends every process the stack started,
including task processes that left the component's process group.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

import psutil
import requests

from callfilter_dev import devenv

ROOT = Path(__file__).resolve().parents[1]

AIRFLOW_EXE = str(Path(sys.executable).parent / "airflow")
DEFAULT_DATA_DIR = ROOT / ".test-run" / "pgdata"  # the test suite's embedded server (tests/conftest.py)
# On a Celery worker's path: task instances record the worker's name as their hostname (stack_hostname.py).
WORKER_SITE = Path(__file__).resolve().parent / "worker_site"
MARKER_ENV = "CALLFILTER_STACK_ID"  # every process of a stack inherits it: stop() finds strays by it
ADMIN_USER = "admin"
RUN_DONE_STATES = frozenset({"success", "failed"})

# Tuning for fast tests; a value already in the caller's env wins.
TUNING = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__PARALLELISM": "32",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__API__WORKERS": "1",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
}


class StackError(RuntimeError):
    """A component failed, or the stack did not get where it was asked to in time."""


class AirflowStack:
    """api-server, scheduler, dag-processor and triggerer (and Celery workers for CeleryExecutor) as
    processes on a PostgreSQL metadata database of their own."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        *,
        executor: str = "LocalExecutor",
        celery_workers: int = 1,
        metadata_url: str | None = None,
        pools: dict[str, int] | None = None,
        database: devenv.Database | None = None,
        keep_database: bool = False,
        stop_grace: float = 10,
        users: dict[str, str] | None = None,
    ) -> None:
        """`env`: the base environment (devenv.airflow_env); the stack adds the wiring (executor, metadata
        database, api port and URLs, JWT secret, auth) and TUNING defaults. `metadata_url`: a
        postgresql+psycopg2:// URL to migrate and use as is; else a fresh `airflow_meta_*` database on
        `database` (default: the embedded server in .test-run/pgdata, or CALLFILTER_DATABASE_URL's), dropped
        by stop() unless `keep_database`. `pools`: name -> slots, created with include_deferred. `users`: more
        SimpleAuthManager users, name -> role (viewer, user, op, admin, or "" for none), each with a password
        of its own (`password(name)`, `token(name)`). `celery_workers`: how many `celery worker`s a
        CeleryExecutor gets, `celery-worker` alone or `celery-worker-1`, `-2`, ...: each is its own Celery node
        and hostname (a task instance's `hostname` is the worker's name) with a log server port of its own;
        the caller's env names the broker (AIRFLOW__CELERY__BROKER_URL) and may set WORKER_CONCURRENCY. The
        Celery result backend is the metadata database, as docker-compose.yaml has it."""
        self.workdir = Path(workdir).resolve()
        self.home = self.workdir / "airflow"
        self.log_dir = self.workdir / "logs"
        self.executor = executor
        self.pools = dict(pools or {})
        self.keep_database = keep_database
        self.stop_grace = stop_grace
        self.port = devenv.free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # The scheduler's and the triggerer's log servers listen on fixed ports (8793, 8794) by default:
        # free ones let several stacks run at once.
        self.log_server_ports = {"worker": devenv.free_port(), "trigger": devenv.free_port()}
        self.metadata_url = metadata_url
        self.timings: dict[str, float] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        # name -> `airflow` arguments; add to or change it before start() for other executors/components.
        self.components: dict[str, list[str]] = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port)],
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer"],
        }
        # name -> environment it gets on top of the stack's.
        self.component_env: dict[str, dict[str, str]] = {}
        if "celery" in executor.lower():
            for n in range(1, celery_workers + 1):
                name = "celery-worker" if celery_workers == 1 else f"celery-worker-{n}"
                self.components[name] = ["celery", "worker", "--celery-hostname", name]
                self.component_env[name] = {
                    "STACK_WORKER_HOSTNAME": name,
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "stack_hostname.hostname",
                    "PYTHONPATH": os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(WORKER_SITE)) if p),
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(devenv.free_port()),
                }
        self._base_env = dict(env)
        self._database = database
        self._own_db: str | None = None
        self._stack_id = uuid.uuid4().hex
        self.roles = {ADMIN_USER: "admin", **(users or {})}
        self._passwords = {name: secrets.token_urlsafe(18) for name in self.roles}
        self._secrets = {purpose: secrets.token_urlsafe(64) for purpose in ("jwt", "api")}
        self._fernet_key = env.get("AIRFLOW__CORE__FERNET_KEY") or _fernet_key()
        self._token: str | None = None
        self._session = requests.Session()
        self._log_files: list[IO[bytes]] = []
        self._started = False
        self._stopped = False
        self.env: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self, timeout: float = 180) -> None:
        """Migrate the metadata db, start every component, wait until the api-server answers and the
        scheduler, dag-processor and triggerer heartbeat; then create the pools. On failure, stop()."""
        if self._started:
            raise StackError("start() was already called")
        self._started = True
        atexit.register(self.stop)
        began = time.monotonic()
        deadline = began + timeout
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.home.mkdir(parents=True, exist_ok=True)
            self._write_passwords_file()
            url = self._prepare_metadata(deadline)
            self.env = self._build_env(url)
            self.timings["metadata_db"] = time.monotonic() - began
            for name, args in self.components.items():
                self._spawn(name, args)
            self._wait_ready(deadline)
            self.timings["components_ready"] = time.monotonic() - began
            for name, slots in self.pools.items():
                self.api("POST", "pools", json=self._pool_body(name, slots))
        except BaseException as exc:
            tail = self.logs()
            self.stop()
            if isinstance(exc, Exception) and not isinstance(exc, StackError):
                raise StackError(f"Airflow stack did not start: {exc!r}\n{tail}") from exc
            raise

    def stop(self) -> None:
        """Terminate every component (process group), wait, kill what is left, including task processes
        that moved to process groups of their own; drop the metadata database the stack created.
        Idempotent; safe after a failed start()."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        victims = self._stack_processes()
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGKILL)
        for _ in range(3):  # processes forked while we were stopping are caught on the next pass
            victims.update(self._stack_processes())
            alive = [p for p in victims.values() if _alive(p)]
            if not alive:
                break
            for proc in alive:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(alive, timeout=5)
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        for log_file in self._log_files:
            log_file.close()
        self._log_files.clear()
        self._session.close()
        if self._own_db and not self.keep_database and self._database is not None:
            with contextlib.suppress(Exception):
                self._drop_database(self._own_db)

    def __enter__(self) -> AirflowStack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def kill(self, name: str) -> list[int]:
        """SIGKILL component `name` at once: its process group and every descendant (task processes
        included), as when its machine or container dies. It stays down (and out of the liveness checks)
        until restart(name). Returns the killed pids."""
        process = self.processes.pop(name)
        victims: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(process.pid)
            victims = {p.pid: p for p in [root, *root.children(recursive=True)]}
        _signal_group(process.pid, signal.SIGKILL)
        for proc in victims.values():
            with contextlib.suppress(psutil.Error):
                proc.kill()
        process.wait(10)
        psutil.wait_procs([p for p in victims.values() if p.pid != process.pid], timeout=10)
        return sorted(victims)

    def restart(self, name: str) -> None:
        """Start component `name` again with the same arguments and environment (its log continues)."""
        if name in self.processes and self.processes[name].poll() is None:
            raise StackError(f"{name} is running")
        self._spawn(name, self.components[name])

    # -- REST API ----------------------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """An authenticated call to /api/v2/`path` (a leading "/" means a path from the server root);
        returns the decoded JSON (None for an empty body); raises StackError on an error status."""
        url = self.base_url + (path if path.startswith("/") else "/api/v2/" + path)
        kwargs.setdefault("timeout", 30)
        for attempt in (1, 2):
            headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self._get_token()}"}
            response = self._session.request(method, url, headers=headers, **kwargs)
            if response.status_code == 401 and attempt == 1:
                self._token = None  # expired or the api-server restarted: log in again
                continue
            break
        if response.status_code >= 400:
            raise StackError(f"{method} {path}: HTTP {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until the dag-processor has parsed `dag_id` (the REST API knows it and it is not stale)."""
        deadline = time.monotonic() + timeout
        began = time.monotonic()
        while True:
            self._check_alive()
            with contextlib.suppress(StackError):
                dag = self.api("GET", f"dags/{_q(dag_id)}")
                if not dag.get("is_stale"):
                    self.timings.setdefault(f"dag_visible:{dag_id}", time.monotonic() - began)
                    return
            if time.monotonic() > deadline:
                errors = self.api("GET", "importErrors").get("import_errors", [])
                detail = "\n".join(f"{e['filename']}: {e['stack_trace'][-1500:]}" for e in errors)
                raise StackError(
                    f"DAG {dag_id} not parsed after {timeout:.0f} s; import errors: {detail or 'none'}\n"
                    f"{self.logs()}"
                )
            time.sleep(0.5)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, *, run_id: str | None = None) -> str:
        """Create a manual DAG run (no logical date) with `conf`; returns its run_id."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self.api("POST", f"dags/{_q(dag_id)}/dagRuns", json=body)["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        """The DAG run's state: queued, running, success or failed."""
        return self.api("GET", f"dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")["state"]

    def run_done(self, dag_id: str, run_id: str) -> str | None:
        """The run's end state (success or failed), or None while it runs; raises StackError if a component
        died."""
        state = self.run_state(dag_id, run_id)
        if state in RUN_DONE_STATES:
            return state
        self._check_alive()
        return None

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float, poll: float = 1.0) -> str:
        """Poll until the run is success or failed and return that state; on timeout raise StackError
        with the task instances' states (and fail early if a component died)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.run_state(dag_id, run_id)
            if state in RUN_DONE_STATES:
                return state
            self._check_alive()
            if time.monotonic() > deadline:
                summary = summarize(self.task_instances(dag_id, run_id))
                raise StackError(f"run {dag_id}/{run_id} still {state} after {timeout:.0f} s:\n{summary}")
            time.sleep(poll)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, mapped ones one per map_index, sorted by (task_id, map_index):
        the API's fields (task_id, map_index, state, try_number, start_date, end_date, rendered_map_index,
        hostname, pool, trigger, ...)."""
        path = f"dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances"
        found: dict[str, dict[str, Any]] = {}
        cursor = ""
        while cursor is not None:
            page = self.api("GET", path, params={"limit": 100, "cursor": cursor, "order_by": "id"})
            for ti in page["task_instances"]:
                found[ti["id"]] = ti
            cursor = page.get("next_cursor")
        return sorted(found.values(), key=lambda ti: (ti["task_id"], ti["map_index"]))

    def state_mismatches(self, dag_id: str, run_id: str) -> set[tuple[str, int]]:
        """(task_id, map_index) of the run's task instances whose try the scheduler failed on a "state
        mismatch" (the executor reported an end while the task instance was already queued again): Airflow's
        own race under load, not the task's doing. From the event log."""
        params = {"dag_id": dag_id, "run_id": run_id, "event": "state mismatch", "limit": 1000}
        return {
            (e["task_id"], e["map_index"]) for e in self.api("GET", "eventLogs", params=params)["event_logs"]
        }

    def clear_task_instances(
        self,
        dag_id: str,
        run_id: str,
        task_ids: Sequence[str | tuple[str, int]],
        *,
        include_downstream: bool = True,
        only_failed: bool = False,
    ) -> list[dict[str, Any]]:
        """Clear task instances of this run only (not a dry run): a task_id clears every map index of a
        mapped task, (task_id, map_index) one of them. The run goes back to queued. Returns the cleared
        task instances."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": [t if isinstance(t, str) else [t[0], t[1]] for t in task_ids],
            "include_downstream": include_downstream,
            "include_upstream": False,
            "include_future": False,
            "include_past": False,
            "only_failed": only_failed,
            "reset_dag_runs": True,
        }
        return self.api("POST", f"dags/{_q(dag_id)}/clearTaskInstances", json=body)["task_instances"]

    # -- diagnostics -------------------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the `airflow` CLI against this stack's metadata database (after start())."""
        return devenv.airflow(self.env, *args, timeout=timeout)

    def logs(self, lines: int = 60) -> str:
        """The last `lines` lines of every component log, for assertion messages."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            process = self.processes.get(path.stem)
            status = (
                ""
                if process is None
                else f" pid {process.pid}, "
                + ("running" if process.poll() is None else f"exited {process.returncode}")
            )
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError as exc:
                text = [repr(exc)]
            parts.append(f"==== {path.name}{status} ====\n" + "\n".join(text))
        return "\n".join(parts)

    # -- internals ---------------------------------------------------------------------------------------

    def _prepare_metadata(self, deadline: float) -> str:
        if self.metadata_url:
            self._migrate(self.metadata_url, deadline)
            return self.metadata_url
        if self._database is None:
            self._database = devenv.Database(DEFAULT_DATA_DIR)
        name = f"airflow_meta_{os.getpid()}_{self._stack_id[:8]}"
        self._own_db = name
        with self._database.connect(autocommit=True) as conn:
            template = _template_name()
            # One builder at a time; copying needs the template to have no sessions.
            conn.execute("select pg_advisory_lock(hashtext(%s))", (template,))
            try:
                exists = conn.execute("select 1 from pg_database where datname = %s", (template,)).fetchone()
                if not exists:
                    building = template + "_build"
                    self._database.create_database(building)
                    self._migrate(self._url(building), deadline)
                    conn.execute(f'alter database "{building}" rename to "{template}"')
                self._database.create_database(name, template=template)
            finally:
                conn.execute("select pg_advisory_unlock(hashtext(%s))", (template,))
        return self._url(name)

    def _migrate(self, url: str, deadline: float) -> None:
        env = self._build_env(url)
        started = time.monotonic()
        result = subprocess.run(
            [AIRFLOW_EXE, "db", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            cwd=self.workdir,
            timeout=max(10.0, deadline - started),
        )
        (self.log_dir / "db-migrate.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise StackError(f"airflow db migrate failed ({result.returncode}):\n{result.stderr[-4000:]}")
        self.timings["db_migrate"] = time.monotonic() - started

    def _url(self, dbname: str) -> str:
        from sqlalchemy.engine import URL

        assert self._database is not None
        params = self._database.params
        host = params["host"]
        socket_dir = bool(host) and host.startswith("/")
        url = URL.create(
            "postgresql+psycopg2",
            username=params["user"],
            password=params["password"],
            host=None if socket_dir else host,
            port=params["port"],
            database=dbname,
            query={"host": host} if socket_dir else {},
        )
        return url.render_as_string(hide_password=False)

    def _build_env(self, metadata_url: str) -> dict[str, str]:
        env = {**TUNING, **self._base_env}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__API__BASE_URL": f"{self.base_url}/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secrets["jwt"],
                "AIRFLOW__API__SECRET_KEY": self._secrets["api"],
                "AIRFLOW__CORE__FERNET_KEY": self._fernet_key,
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                    f"{u}:{r}" for u, r in self.roles.items()
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self._passwords_file()),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_server_ports["worker"]),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_server_ports["trigger"]),
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",  # it would bind a fixed port (8974)
                MARKER_ENV: self._stack_id,
            }
        )
        if "celery" in self.executor.lower():
            # As docker-compose.yaml: Celery's results in the metadata database.
            backend = "db+" + metadata_url.replace("postgresql+psycopg2://", "postgresql://", 1)
            env.setdefault("AIRFLOW__CELERY__RESULT_BACKEND", backend)
        return env

    def _passwords_file(self) -> Path:
        return self.workdir / "simple_auth_manager_passwords.json"

    def _write_passwords_file(self) -> None:
        # The api-server keeps a configured user's password from this file instead of generating one.
        path = self._passwords_file()
        path.write_text(json.dumps(self._passwords) + "\n")
        path.chmod(0o600)

    def _spawn(self, name: str, args: list[str]) -> None:
        log_file = open(self.log_dir / f"{name}.log", "ab")
        self._log_files.append(log_file)
        self.processes[name] = subprocess.Popen(
            [AIRFLOW_EXE, *args],
            env={**self.env, **self.component_env.get(name, {})},
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _wait_ready(self, deadline: float) -> None:
        want = [
            job
            for job in ("scheduler", "dag_processor", "triggerer")
            if job.replace("_", "-") in self.processes
        ]
        health: dict[str, Any] = {}
        while True:
            self._check_alive()
            with contextlib.suppress(requests.RequestException, ValueError):
                health = self._session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
                if all((health.get(job) or {}).get("status") == "healthy" for job in want):
                    self._get_token()
                    return
            if time.monotonic() > deadline:
                raise StackError(
                    f"components not healthy in time: {health or 'api-server not answering'}\n{self.logs()}"
                )
            time.sleep(0.5)

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StackError(f"{name} exited with {process.returncode}\n{self.logs()}")

    def _get_token(self) -> str:
        if self._token is None:
            self._token = self.token(ADMIN_USER)
        return self._token

    def password(self, user: str) -> str:
        """The SimpleAuthManager password of `user` (the admin or one of `users`)."""
        return self._passwords[user]

    def token(self, user: str) -> str:
        """A fresh JWT for `user` from the api-server's POST /auth/token."""
        response = self._session.post(
            f"{self.base_url}/auth/token",
            json={"username": user, "password": self._passwords[user]},
            timeout=30,
        )
        if response.status_code >= 400:
            raise StackError(f"login of {user} failed: HTTP {response.status_code}: {response.text[:500]}")
        return response.json()["access_token"]

    def _pool_body(self, name: str, slots: int) -> dict[str, Any]:
        return {"name": name, "slots": slots, "description": "AirflowStack", "include_deferred": True}

    def _stack_processes(self) -> dict[int, psutil.Process]:
        """Our components, their descendants, and any process carrying this stack's marker in its
        environment (task processes set their own process group; orphans are re-parented)."""
        found: dict[int, psutil.Process] = {}
        for process in self.processes.values():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(process.pid)
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
        for proc in psutil.process_iter():
            if proc.pid in found or proc.pid == os.getpid():
                continue
            with contextlib.suppress(psutil.Error):
                if proc.environ().get(MARKER_ENV) == self._stack_id:
                    found[proc.pid] = proc
        return found

    def executor_workers(self) -> list[psutil.Process]:
        """The processes that fork the task processes: the LocalExecutor's workers (forked from the
        scheduler), or the pool processes of the Celery workers ("ForkPoolWorker-N", retitled "airflow
        supervisor: ..." once they have run a task), and any task process running."""
        workers = []
        for proc in self._stack_processes().values():
            with contextlib.suppress(psutil.Error):
                title = " ".join(proc.cmdline())
                if title.startswith(("airflow worker -- LocalExecutor", "airflow supervisor:")) or (
                    ":ForkPoolWorker-" in title
                ):
                    workers.append(proc)
        return workers

    def preloaded_in_workers(self, libraries: list[str]) -> list[bool]:
        """Per executor worker: whether every one of `libraries` (shared objects' paths) is in its memory map,
        i.e. the task processes it forks start with them loaded."""
        preloaded = []
        for worker in self.executor_workers():
            maps = Path(f"/proc/{worker.pid}/maps").read_text()
            preloaded.append(all(library in maps for library in libraries))
        return preloaded

    def _drop_database(self, name: str) -> None:
        assert self._database is not None
        with self._database.connect(autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def summarize(task_instances: list[dict[str, Any]]) -> str:
    """One line per task: state counts over its map indexes, then the unfinished/failed instances."""
    by_task: dict[str, Counter[str]] = {}
    for ti in task_instances:
        by_task.setdefault(ti["task_id"], Counter())[str(ti["state"])] += 1
    lines = [
        f"  {task}: " + ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
        for task, states in by_task.items()
    ]
    pending = [ti for ti in task_instances if ti["state"] not in ("success", "skipped")]
    for ti in pending[:30]:
        index = "" if ti["map_index"] < 0 else f"[{ti['map_index']}]"
        label = f" ({ti['rendered_map_index']})" if ti.get("rendered_map_index") else ""
        lines.append(
            f"    {ti['task_id']}{index}{label}: {ti['state']} try {ti['try_number']}, "
            f"start {ti['start_date']}, end {ti['end_date']}"
        )
    if len(pending) > 30:
        lines.append(f"    ... {len(pending) - 30} more")
    return "\n".join(lines) or "  (no task instances)"


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _template_name() -> str:
    from importlib.metadata import version

    return "airflow_meta_template_" + version("apache-airflow-core").replace(".", "_")


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
