"""Vendor requests: the request rate with 1,000 batches waiting for a vendor slot, and requests per vendor task.

(a) **1,000 batches waiting.** A business database on real PostgreSQL with `--runs` filter tasks of
`--waiting-per-run` batches each (default 200 x 5 = 1,000: the DAG lets as many sends as the cap wait per
run), planned by `planning.plan_batches` and queued by `slots.reserve` as the send operator does, behind
`--cap` holders (one more filter task) whose vendor tasks were created by `sending.send_batch` on the real
simulator over HTTP and stay DIALING (`--stuck-tasks`). Then the 1,000 real `VendorSlotTrigger`s and the
holders' 5 `VendorTaskTrigger`s run concurrently in this process's one asyncio event loop, started spread
over one slot poll interval (as sends defer at different moments), for `--seconds`. The simulator counts the
requests it receives per second (`/_sim/stats`; its rate limit is off, so it counts instead of refusing).
The poll intervals are the production ones (`CALLFILTER_POLL_INTERVAL` 60 s: the slot triggers poll every
min(60/4, 5) = 5 s), so the rates are the production rates, not scaled. The triggers run in the bench's own
event loop, not through Airflow's triggerer and scheduler: the same trigger code and one loop, as one
triggerer process runs them, without the triggerer's own overhead.

(b) **Requests per vendor task.** `call_filter` runs through real Airflow (`dag.test()`, SQLite metadata)
on `--task-numbers` numbers in batches of 1,000 against a simulator at a scaled pace (calls of
`--call-seconds`, 30 lines, polls every `--task-poll` s: 1 s calls and 2 s polls are the vendor's 30 s calls
and the 60 s production polls, 30 times faster, so the count of status polls per vendor task is the
production one). The simulator counts each vendor task's creates, status polls, result pages and cancels.

    .venv/bin/python bench/vendor_requests.py                 # (a) 1,000 waiting for 60 s, then (b) (~4 min)
    .venv/bin/python bench/vendor_requests.py --only waiting  # just (a); --help for the options

Target: the vendor's limit, 20 requests per second per app, never exceeded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / ".bench-run"
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
os.environ.setdefault("AIRFLOW_HOME", str(RUN_DIR / "airflow"))  # before anything imports airflow
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import requests  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from callfilter_dev import devenv  # noqa: E402

APP_ID, APP_SECRET = "bench-app", "bench-secret"
VENDOR_LIMIT = 20.0  # requests per second per app (shared/callcenter-api.md, 42901)
PRODUCTION_POLL = 60.0  # CALLFILTER_POLL_INTERVAL's default


class Simulator:
    def __init__(self, *options: str) -> None:
        self.port = devenv.free_port()
        log_path = RUN_DIR / f"simulator-requests-{self.port}.log"
        self.process = devenv.start_simulator(self.port, APP_ID, APP_SECRET, *options, log_path=log_path)

    def stats(self) -> dict[str, Any]:
        return requests.get(f"http://127.0.0.1:{self.port}/_sim/stats", timeout=30).json()

    def conn(self) -> str:
        return devenv.callcenter_conn(self.port, APP_ID, APP_SECRET)

    def stop(self) -> None:
        devenv.stop_process(self.process, grace=10)


class WarningCount(logging.Handler):
    """Warnings logged while the triggers run (a status not read, the slots not counted)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages[record.getMessage().split(" (")[0][:80]] += 1


# ---- (a) 1,000 batches waiting for a slot -------------------------------------------------------------


def queue_waiting_batches(conn: Any, storage: Any, runs: int, per_run: int, cap: int) -> tuple[list, list]:
    """`cap` holders sent to the vendor and `runs` x `per_run` batches waiting for a slot, through the
    pipeline's own registration, planning, slot and send code. Returns (holder logs, waiting log ids)."""
    from callfilter import db as dbm
    from callfilter import planning, slots
    from callfilter.params import validate_params
    from callfilter.registration import register_task
    from callfilter.sending import batch_log, load_batch, send_batch
    from callfilter.vendor import VendorHook

    def planned(batchid: str, count: int, first_telid: int) -> list[int]:
        devenv.load_case_tel(conn, batchid, [f"1390{first_telid + i:07d}" for i in range(count)], first_telid)
        params = validate_params({"batchid": batchid, "calling_hours": "", "batch_size": 1})
        reg = register_task(conn, params, f"bench-requests-{batchid}")
        task = dbm.one(conn, "get_task", {"filter_task_id": reg.filter_task_id})
        return [b.batch_id for b in planning.plan_batches(conn, task, storage, max_batches=1024)]

    hook = VendorHook()
    holders = []
    for batch_id in planned("BENCH-REQ-HOLD", cap, 1):
        log = batch_log(conn, batch_id)
        assert slots.reserve(conn, log["id"], cap)
        holders.append(send_batch(conn, hook, storage, load_batch(conn, batch_id), log))
    waiting = []
    for run in range(runs):
        for batch_id in planned(f"BENCH-REQ-{run + 1:04d}", per_run, cap + 1 + run * per_run):
            log_id = batch_log(conn, batch_id)["id"]
            assert not slots.reserve(conn, log_id, cap)
            waiting.append(log_id)
    return holders, waiting


async def run_triggers(triggers: list[Any], spread: float, seconds: float) -> list[dict[str, Any]]:
    """Run every trigger in this event loop (started spread over `spread` s) for `seconds`; their events."""
    events: list[dict[str, Any]] = []

    async def run_one(trigger: Any, delay: float) -> None:
        await asyncio.sleep(delay)
        async for event in trigger.run():
            events.append(event.payload)
            return

    tasks = [asyncio.create_task(run_one(t, spread * i / len(triggers))) for i, t in enumerate(triggers)]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return events


def waiting_bench(args: argparse.Namespace, database: devenv.Database, work: Path) -> dict[str, Any]:
    from callfilter.files import Storage
    from callfilter.operators import DEFAULT_QUERY_TIMEOUT
    from callfilter.triggers import VendorSlotTrigger, VendorTaskTrigger

    name = "callfilter_bench_requests"
    database.create_database(name)
    sim = Simulator("--call-seconds", "30", "--rate-limit", "0", "--stuck-tasks", "^cf-1-")
    try:
        os.environ["AIRFLOW_CONN_CALLFILTER_DB"] = database.airflow_conn(name)
        os.environ["AIRFLOW_CONN_CALLCENTER_DEFAULT"] = sim.conn()
        os.environ["CALLFILTER_FILES_ROOT"] = str(work / "files-waiting")
        started = time.perf_counter()
        with database.connect(name, row_factory=dict_row, autocommit=True) as conn:
            devenv.apply_schema(conn)
            holders, waiting = queue_waiting_batches(
                conn, Storage(), args.runs, args.waiting_per_run, args.cap
            )
        print(f"(a) setup: {len(holders)} holders dialing at the vendor, {len(waiting)} batches waiting in "
              f"{args.runs} filter tasks ({time.perf_counter() - started:.1f} s, not measured)", flush=True)  # fmt: skip

        slot_poll = min(args.poll_interval / 4, 5.0)  # as SendBatchOperator defers
        timeout = DEFAULT_QUERY_TIMEOUT.total_seconds()
        now = time.time()
        triggers = [
            VendorSlotTrigger(log_id=i, cap=args.cap, poll_interval=slot_poll, vendor_timeout=timeout)
            for i in waiting
        ] + [
            VendorTaskTrigger(h["task_id"], "callcenter_default", args.poll_interval, now + timeout)
            for h in holders
        ]
        from callfilter import db as dbm

        connects, aconnect = [0], dbm.aconnect

        def counted(*args: Any) -> Any:  # the triggers' database connections, counted as they open
            connects[0] += 1
            return aconnect(*args)

        dbm.aconnect = counted
        warnings, root = WarningCount(), logging.getLogger()
        printing, root.handlers = root.handlers, [warnings]  # counted, not printed while they run
        before = sim.stats()
        t0 = time.time()
        try:
            events = asyncio.run(run_triggers(triggers, slot_poll, args.seconds))
        finally:
            t1 = time.time()
            root.handlers = printing
            dbm.aconnect = aconnect
        after = sim.stats()
    finally:
        sim.stop()
        database.create_database(name)  # empty again
    # Whole seconds inside the run, after the first slot poll interval (every trigger started).
    first, last = int(t0 + slot_poll) + 1, int(t1) - 1
    per_second = [after["requests_by_second"].get(str(s), 0) for s in range(first, last + 1)]
    kinds = {k: v - before["requests_by_kind"].get(k, 0) for k, v in after["requests_by_kind"].items()}
    return {
        "waiting": len(waiting),
        "holders": len(holders),
        "slot_poll": slot_poll,
        "seconds": len(per_second),
        "peak": max(per_second, default=0),
        "mean": statistics.fmean(per_second) if per_second else 0.0,
        "p50": statistics.median(per_second) if per_second else 0,
        "status_requests": kinds.get("status", 0),
        "events": len(events),
        "db_connects": connects[0] / (t1 - t0),
        "warnings": dict(warnings.messages.most_common(5)),
    }


# ---- (b) requests per vendor task ---------------------------------------------------------------------


def per_task_bench(args: argparse.Namespace, database: devenv.Database, work: Path) -> dict[str, Any]:
    name = "callfilter_bench_requests_run"
    database.create_database(name)
    sim = Simulator("--call-seconds", str(args.call_seconds), "--lines", "30", "--rate-limit", "0")
    try:
        with database.connect(name, row_factory=dict_row, autocommit=True) as conn:
            devenv.apply_schema(conn)
            devenv.load_case_tel(conn, "BENCH-REQ-RUN", [f"1391{i:07d}" for i in range(args.task_numbers)])
        env = devenv.airflow_env(
            RUN_DIR / "airflow-requests",
            work / "files-run",
            database.airflow_conn(name),
            sim.conn(),
            CALLFILTER_POLL_INTERVAL=str(args.task_poll),
        )
        devenv.prepare_airflow(env)
        conf = {"batchid": "BENCH-REQ-RUN", "batch_size": 1000, "calling_hours": ""}
        started = time.perf_counter()
        result = devenv.airflow(env, "dags", "test", "call_filter", "-c", json.dumps(conf), check=False)
        took = time.perf_counter() - started
        (RUN_DIR / "requests-dag-test.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0 or "state=success" not in (result.stdout + result.stderr).replace(
            "DagRunState.SUCCESS", "state=success"
        ):
            raise SystemExit(f"(b) the run failed: see {RUN_DIR / 'requests-dag-test.log'}")
        stats = sim.stats()
    finally:
        sim.stop()
        database.create_database(name)
    tasks = stats["tasks"]
    by_kind = stats["requests_by_kind"]
    return {
        "run_seconds": took,
        "tasks": tasks,
        "creates": by_kind.get("create", 0),
        "cancels": by_kind.get("cancel", 0),
        "peak": stats["peak_requests_per_second"],
    }


# ---- the report ---------------------------------------------------------------------------------------


def report_waiting(a: dict[str, Any]) -> None:
    verdict = "met" if a["peak"] <= VENDOR_LIMIT else "NOT met"
    print(f"\n(a) {a['waiting']:,} batches waiting for a slot behind {a['holders']} dialing vendor tasks, "
          f"slot polls every {a['slot_poll']:g} s, {a['seconds']} whole seconds measured")  # fmt: skip
    print(f"    vendor requests per second: peak {a['peak']}, mean {a['mean']:.1f}, median {a['p50']:g} "
          f"(limit {VENDOR_LIMIT:g}/s: {verdict})")  # fmt: skip
    print(f"    status requests in all: {a['status_requests']:,}; slot events (none expected: no vendor "
          f"task ends): {a['events']}")  # fmt: skip
    print(f"    database connections the slot triggers opened: {a['db_connects']:.1f} a second (a read each; "
          f"{a['waiting'] / a['slot_poll']:.0f} a second if every trigger read for itself)")  # fmt: skip
    if a["warnings"]:
        print(f"    warnings logged by the triggers: {a['warnings']}")


def report_per_task(b: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\n(b) call_filter on {args.task_numbers:,} numbers in batches of 1,000 through dag.test() "
          f"({b['run_seconds']:.0f} s; calls {args.call_seconds:g} s, polls every {args.task_poll:g} s)")  # fmt: skip
    print("    vendor task           numbers  dialing s  status polls  result pages")
    for t in b["tasks"]:
        dialing = (t["ended_at"] or 0) - t["created_at"]
        print(f"    {t['task_id']:<20} {t['numbers']:>8}  {dialing:>9.0f}  {t['status_requests']:>12}  "
              f"{t['result_requests']:>12}")  # fmt: skip
    polls = [t["status_requests"] for t in b["tasks"]]
    pages = [t["result_requests"] for t in b["tasks"]]
    print(f"    per vendor task: 1 create ({b['creates']} in all), {statistics.fmean(polls):.1f} status polls, "
          f"{statistics.fmean(pages):.1f} result pages, {b['cancels']} cancels; busiest second of the run: "
          f"{b['peak']} requests (limit {VENDOR_LIMIT:g}/s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("waiting", "per-task"), help="run one part only")
    parser.add_argument(
        "--runs", type=int, default=200, help="filter tasks with batches waiting (%(default)s)"
    )
    parser.add_argument(
        "--waiting-per-run", type=int, default=5, help="batches waiting per task (%(default)s)"
    )
    parser.add_argument("--cap", type=int, default=5, help="CALLFILTER_VENDOR_CAP (%(default)s)")
    parser.add_argument(
        "--poll-interval", type=float, default=PRODUCTION_POLL, help="CALLFILTER_POLL_INTERVAL (%(default)s)"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="how long (a) runs (%(default)s)")
    parser.add_argument("--task-numbers", type=int, default=2000, help="numbers in (b) (%(default)s)")
    parser.add_argument("--call-seconds", type=float, default=1.0, help="(b)'s mean call (%(default)s)")
    parser.add_argument("--task-poll", type=float, default=2.0, help="(b)'s poll interval (%(default)s)")
    args = parser.parse_args()

    for name in ("callfilter", "callfilter_dev", "airflow"):  # a line per batch and per poll: not here
        logging.getLogger(name).setLevel(logging.WARNING)
    RUN_DIR.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="callfilter-requests-"))
    database = devenv.Database(RUN_DIR / "pgdata")
    try:
        if args.only in (None, "waiting"):
            report_waiting(waiting_bench(args, database, work))
        if args.only in (None, "per-task"):
            report_per_task(per_task_bench(args, database, work), args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if database.server is not None:  # the embedded server this run started stops with it
            database.server.cleanup_mode = "stop"
            database.server.cleanup()


if __name__ == "__main__":
    main()
