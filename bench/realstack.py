"""The real Airflow components for the benchmarks that run call_filter through the scheduler.

`vendor_stack()` builds what `bench/saturation.py` and `bench/scheduler.py` share: a business database on the
embedded PostgreSQL in `.bench-run/` (or CALLFILTER_DATABASE_URL's) with the schema and the numbers loaded, a
vendor simulator process with the given options, and `tests/stack.py`'s `AirflowStack` (api-server,
scheduler, dag-processor, triggerer; LocalExecutor) wired to both. Everything it started is stopped on exit.
"""

from __future__ import annotations

import argparse
import bisect
import compileall
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

import psycopg  # noqa: E402
import requests  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from callfilter_dev import devenv  # noqa: E402
from callfilter_dev.watch import RunStuck, RunWatcher, stuck_after_default  # noqa: E402
from tests.stack import AirflowStack, summarize  # noqa: E402

APP_ID, APP_SECRET = "bench-app", "bench-secret"
DATA_DIR = ROOT / ".bench-run" / "pgdata"


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options every bench on this stack takes: the simulator's seed and when a run counts as stuck."""
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--stuck-after",
        type=float,
        default=stuck_after_default(),
        help="seconds with nothing moved before a run is reported stuck (default %(default)s)",
    )


def telnos(count: int) -> list[str]:
    """`count` distinct well-formed mobile numbers."""
    return [f"1388{i:07d}" for i in range(count)]


def timestamp(value: str | None) -> float | None:
    """An API timestamp (ISO 8601) as epoch seconds."""
    return datetime.fromisoformat(value).timestamp() if value else None


def proc_stat(pid: int | str) -> list[str]:
    """A process's /proc/PID/stat fields after its command name: state, ppid, ... (ppid is [1]; utime, stime,
    cutime, cstime are [11:15])."""
    with open(f"/proc/{pid}/stat") as stat_file:
        stat = stat_file.read()
    return stat[stat.rindex(")") + 2 :].split()


def cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user and system) of each root process ("name") and of its descendants, reaped ones included
    ("name: children"), read from /proc; "machine" is every core's busy time, "other" what no root's tree
    accounts for."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    own: dict[int, float] = {}
    reaped: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = proc_stat(entry)
        except OSError:  # it ended meanwhile
            continue
        pid = int(entry)
        parent[pid] = int(fields[1])
        own[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime stime
        reaped[pid] = (int(fields[13]) + int(fields[14])) / tick  # cutime cstime: children it waited for
    owner = {pid: name for name, pid in roots.items()}
    totals = {key: 0.0 for name in roots for key in (name, f"{name}: children")}
    for pid in own:
        root = pid
        while root not in owner and parent.get(root, 0) > 1:
            root = parent[root]
        if root not in owner:
            continue
        name = owner[root]
        totals[name if pid == root else f"{name}: children"] += own[pid]
        totals[f"{name}: children"] += reaped[pid]
    with open("/proc/stat") as stat_file:
        busy = stat_file.readline().split()[1:9]  # user nice system idle iowait irq softirq steal
    totals["machine"] = (sum(int(f) for f in busy) - int(busy[3]) - int(busy[4])) / tick
    totals["other"] = totals["machine"] - sum(v for k, v in totals.items() if k != "machine")
    return totals


class CpuSampler:
    """`cpu_seconds` of the stack's processes sampled every `interval` s in a thread, to tell where the CPU of
    a span of time went (`between`)."""

    def __init__(self, roots: dict[str, int], interval: float = 0.5) -> None:
        self.roots = roots
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.samples.append((time.time(), cpu_seconds(self.roots)))
            if self._stop.wait(self.interval):
                return

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds of each process tree from the sample nearest `start` to the one nearest `end`."""
        times = [t for t, _ in self.samples]

        def nearest(moment: float) -> dict[str, float]:
            i = bisect.bisect_left(times, moment)
            near = min((j for j in (i - 1, i) if 0 <= j < len(times)), key=lambda j: abs(times[j] - moment))
            return self.samples[near][1]

        first, last = nearest(start), nearest(end)
        return {name: last[name] - first[name] for name in first}


@dataclass
class VendorStack:
    stack: AirflowStack
    database: devenv.Database
    dbname: str
    simulator_port: int
    work: Path
    simulator: subprocess.Popen[bytes]
    most_deferred: int = 0  # the most task instances of the last run_call_filter deferred at once

    def cpu_roots(self) -> dict[str, int]:
        """The processes whose trees `cpu_seconds` accounts: each Airflow component (the scheduler's with its
        LocalExecutor workers and their task processes), PostgreSQL, the simulator, and this bench."""
        with self.connect() as conn:  # its backend, read while it lives: a child of the postmaster
            backend = conn.execute("select pg_backend_pid()").fetchone()[0]
            postmaster = int(proc_stat(backend)[1])
        roots = {name: process.pid for name, process in self.stack.processes.items()}
        return {**roots, "postgres": postmaster, "simulator": self.simulator.pid, "bench": os.getpid()}

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A connection to the business database."""
        return self.database.connect(self.dbname, **kwargs)

    def simulator_stats(self) -> dict[str, Any]:
        """The simulator's `/_sim/stats`: its counters and every vendor task with its times."""
        return requests.get(f"http://127.0.0.1:{self.simulator_port}/_sim/stats", timeout=30).json()

    def deferred(self, dag_id: str, run_id: str) -> int:
        """How many task instances of the run are deferred now: its triggers."""
        path = f"dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return self.stack.api("GET", path, params={"state": "deferred", "limit": 1})["total_entries"]

    def _sampled_deferred(self, dag_id: str, run_id: str) -> None:
        """Note the run's deferred task instances in `most_deferred`; a request that times out is skipped (an
        api-server on two saturated cores has kept one waiting for more than 30 s)."""
        with contextlib.suppress(requests.Timeout):
            self.most_deferred = max(self.most_deferred, self.deferred(dag_id, run_id))

    def _run_done(self, dag_id: str, run_id: str) -> str | None:
        """The run's end state, or None while it runs or when the request timed out."""
        with contextlib.suppress(requests.Timeout):
            return self.stack.run_done(dag_id, run_id)
        return None

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float, interval: float) -> str:
        """Wait for a run's end as `run_call_filter` does, with the same API requests at the same pace (the
        run's deferred task instances, its state), so that two runs compared put the same load on the
        api-server; returns its end state."""
        deadline = time.monotonic() + timeout
        while (state := self._run_done(dag_id, run_id)) is None:
            self._sampled_deferred(dag_id, run_id)
            if time.monotonic() > deadline:
                sys.exit(f"run {dag_id}/{run_id} not done after {timeout:.0f} s")
            time.sleep(interval)
        return state

    def stored_batches(self, batchid: str) -> int:
        """How many batches of the batchid's filter tasks have their results stored."""
        with self.connect() as conn:
            row = conn.execute(
                "select count(*) from call_filter_send_batch_log l join call_filter_task t"
                " on t.id = l.filter_task_id where t.batchid = %s and l.query_recvflag = 1",
                (batchid,),
            ).fetchone()
        return int(row[0]) if row else 0

    def run_call_filter(
        self, conf: dict[str, Any], stuck_after: float, stop_after: int | None = None, interval: float = 0.5
    ) -> tuple[str, float, float, str]:
        """Trigger call_filter with `conf` and follow it from the batch log (progress lines) until it ends, or
        until `stop_after` batches are stored (the run goes on; the stack's stop ends it); exits with what it
        waited on if nothing moved for `stuck_after` seconds. Every `interval` s, two API requests (the run's
        deferred task instances, its state). Returns (run id, trigger time, end time, end state), times as
        epoch seconds."""
        started = time.time()
        run_id = self.stack.trigger("call_filter", conf)
        watcher = RunWatcher(
            lambda: self.connect(row_factory=dict_row, autocommit=True),
            conf["batchid"],
            stuck_after=stuck_after,
            interval=interval,
            line_every=10.0,
        )
        self.most_deferred = 0

        def done() -> bool:
            self._sampled_deferred("call_filter", run_id)
            if stop_after is not None and self.stored_batches(conf["batchid"]) >= stop_after:
                return True
            return self._run_done("call_filter", run_id) is not None

        try:
            watcher.watch(done)
        except RunStuck as stuck:
            sys.exit(f"run {run_id} {stuck}\n{summarize(self.stack.task_instances('call_filter', run_id))}")
        ended = time.time()
        return run_id, started, ended, self.stack.run_state("call_filter", run_id)


@contextlib.contextmanager
def vendor_stack(
    dbname: str,
    numbers: dict[str, list[str]],
    simulator_options: list[str],
    *,
    dags: dict[str, str] | None = None,
    **settings: str,
) -> Iterator[VendorStack]:
    """The business database `dbname` (made afresh) with `numbers` (batchid -> telnos) in case_tel, a simulator
    started with `simulator_options`, and the Airflow components with `settings` (CALLFILTER_* and AIRFLOW__*
    variables) in their environment. `dags`: more DAG files (name -> source) beside call_filter's, in a
    DAG folder of the run's own."""
    work = Path(tempfile.mkdtemp(prefix="callfilter-bench-"))
    database = devenv.Database(DATA_DIR)
    database.create_database(dbname)
    with database.connect(dbname) as conn:
        devenv.apply_schema(conn)
        for batchid, telnos_of_batch in numbers.items():
            devenv.load_case_tel(conn, batchid, telnos_of_batch)
    if dags:
        folder = work / "dags"
        folder.mkdir()
        (folder / "call_filter.py").write_text((ROOT / "dags" / "call_filter.py").read_text())
        for name, source in dags.items():
            (folder / name).write_text(source)
        # Compiled, as `make bytecode` compiles dags/: every task process parses its DAG file.
        compileall.compile_dir(folder, quiet=1)
        settings = {"AIRFLOW__CORE__DAGS_FOLDER": str(folder), **settings}
    port = devenv.free_port()
    simulator = devenv.start_simulator(
        port, APP_ID, APP_SECRET, *simulator_options, log_path=work / "simulator.log"
    )
    env = devenv.airflow_env(
        work / "airflow",
        work / "files",
        database.airflow_conn(dbname),
        devenv.callcenter_conn(port, APP_ID, APP_SECRET),
        **settings,
    )
    try:
        with AirflowStack(work / "stack", env, database=database) as stack:
            stack.wait_for_dag("call_filter")
            for name in dags or {}:
                stack.wait_for_dag(Path(name).stem)
            yield VendorStack(stack, database, dbname, port, work, simulator)
    finally:
        simulator.terminate()
        simulator.wait(30)
