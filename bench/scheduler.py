"""Scheduler: call_filter's added latency and its fan-out, through the real scheduler.

Two parts, each on a stack of its own (the real api-server, scheduler, dag-processor and triggerer with
LocalExecutor, the embedded PostgreSQL, the vendor simulator as a process):

- latency: one filter task of 100,000 numbers (100 batches of 1000), cap 5, at the real pace scaled 30 times
  down, ratios kept: a vendor task dials for ~30 s (15 minutes) against a 2 s poll (60 s). Prints trigger to the first vendor task created (target <= 30 s), and per batch its
  vendor task's end (the simulator's own time) to its results stored and verdicts applied (the batch log's
  query_recvtime), median and max (target <= the poll interval + 5 s).
- fanout: N batches of 1000 numbers (default 1000, a million numbers) with an instant vendor, against a no-op
  DAG of the same shape (register -> plan -> mapped group of send and query over N -> apply -> finish, each
  task doing nothing) run first on the same stack. Prints each run's total (trigger to run end) and its time
  per mapped task instance: the wall time from the first mapped instance's start to the last one's end,
  divided by the mapped instances (2 N). Target: call_filter's at most 1.3x the no-op's.

    .venv/bin/python bench/scheduler.py                                 # both parts at the issue's sizes
    .venv/bin/python bench/scheduler.py --only fanout --batches 200     # 5 min on the 2 quiet cores here
    .venv/bin/python bench/scheduler.py --only fanout --batches 200 --no-preload   # each task process imports
    .venv/bin/python bench/scheduler.py --help
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from typing import Any

from psycopg.rows import dict_row

import realstack

NOOP_DAG_ID = "bench_noop_fanout"
FANOUT_POLL = 1.0  # seconds between the bench's own requests about a fan-out run, the same for both DAGs

# call_filter's shape with every task doing nothing: the floor of the fan-out. Sends are limited per run as
# call_filter's are (CALLFILTER_VENDOR_CAP), so the two differ only in the work.
NOOP_DAG = """
from __future__ import annotations

import os

import pendulum
from airflow.sdk import Param, dag, get_current_context, task, task_group


@dag(
    dag_id="bench_noop_fanout",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"batches": Param(1, type="integer", minimum=1)},
    tags=["bench"],
)
def bench_noop_fanout():
    @task
    def register() -> dict:
        return {"filter_task_id": 0}

    @task
    def plan(filter_task: dict) -> list[dict]:
        count = get_current_context()["params"]["batches"]
        return [
            {"filter_task_id": 0, "batch_order": i + 1, "batches": count, "label": f"batch {i + 1}/{count}"}
            for i in range(count)
        ]

    @task_group(group_id="batch")
    def screen_batch(batch: dict) -> None:
        @task(max_active_tis_per_dagrun=int(os.environ.get("CALLFILTER_VENDOR_CAP", "5")))
        def send(batch: dict) -> int:
            return batch["batch_order"]

        @task
        def query(batch: dict, batch_log_id: int) -> None:
            return None

        query(batch, send(batch))

    @task(trigger_rule="all_done")
    def apply_verdicts(filter_task: dict) -> int:
        return 0

    @task(trigger_rule="all_done")
    def finish(filter_task: dict) -> dict:
        return {}

    filter_task = register()
    screened = screen_batch.expand(batch=plan(filter_task))
    screened >> apply_verdicts(filter_task) >> finish(filter_task)


bench_noop_fanout()
"""


def load() -> str:
    """The machine's load average (1, 5, 15 min) against its cores: the figures depend on it."""
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def mapped_span(task_instances: list[dict[str, Any]]) -> tuple[int, float, float]:
    """(mapped task instances, the first one's start, the last one's end), epoch seconds."""
    mapped = [ti for ti in task_instances if ti["map_index"] >= 0]
    starts = [realstack.timestamp(ti["start_date"]) for ti in mapped]
    ends = [realstack.timestamp(ti["end_date"]) for ti in mapped]
    return len(mapped), min(s for s in starts if s), max(e for e in ends if e)


def latency(args: argparse.Namespace) -> None:
    batchid = "BENCH-LATENCY"
    options = ["--call-seconds", str(args.call_seconds), "--lines", str(args.lines), "--seed", str(args.seed),
               "--max-unfinished", str(args.cap)]  # fmt: skip
    print(
        f"latency: {args.numbers} numbers in batches of {args.batch_size}, cap {args.cap}, poll {args.poll:g} s, "
        f"calls of ~{args.call_seconds:g} s on {args.lines} lines"
    )
    with realstack.vendor_stack(
        "callfilter_bench_latency",
        {batchid: realstack.telnos(args.numbers)},
        options,
        CALLFILTER_POLL_INTERVAL=str(args.poll),
        CALLFILTER_VENDOR_CAP=str(args.cap),
        CALLFILTER_DIAL_SECONDS_PER_NUMBER="0",
    ) as bench:
        conf = {"batchid": batchid, "batch_size": args.batch_size, "calling_hours": ""}
        run_id, started, ended, state = bench.run_call_filter(conf, args.stuck_after, args.stop_after)
        stats = bench.simulator_stats()
        task_instances = bench.stack.task_instances("call_filter", run_id)
        with bench.connect(row_factory=dict_row) as conn:
            logs = conn.execute(
                "select l.batch_order, l.task_id, l.query_recvtime, l.query_recvflag"
                " from call_filter_send_batch_log l join call_filter_task t on t.id = l.filter_task_id"
                " where t.batchid = %s",
                (batchid,),
            ).fetchall()
    vendor = {t["task_id"]: t for t in stats["tasks"]}
    # A query's map index is its batch's place in plan's list, which is in batch order.
    query_ends = {
        ti["map_index"] + 1: realstack.timestamp(ti["end_date"])
        for ti in task_instances
        if ti["task_id"] == "batch.query" and ti["map_index"] >= 0
    }
    stored, query_done = [], []
    for log in logs:
        task = vendor.get(log["task_id"])
        if not task or task["status"] != "FINISHED" or log["query_recvflag"] != 1:
            continue
        stored.append(log["query_recvtime"].timestamp() - task["ended_at"])
        if query_ends.get(log["batch_order"]):
            query_done.append(query_ends[log["batch_order"]] - task["ended_at"])
    first_created = min(t["created_at"] for t in stats["tasks"]) - started
    durations = [t["ended_at"] - t["created_at"] for t in stats["tasks"] if t["ended_at"]]
    target = args.poll + 5
    if state not in ("success", "failed"):
        state = f"stopped after {len(stored)} batches stored ({state})"
    print(f"run {run_id}: {state} in {ended - started:.1f} s; {len(stats['tasks'])} vendor tasks, "
          f"median {statistics.median(durations):.1f} s each, most unfinished at once {stats['max_unfinished_seen']}, "
          f"42902 answers {stats['too_many_tasks_answers']}")  # fmt: skip
    print(f"  most task instances deferred at once (triggers): {bench.most_deferred}")
    print(f"  trigger to first vendor task created:       {first_created:6.1f} s (target <= 30 s)")
    print(
        f"  vendor task FINISHED to results stored and applied (batch log query_recvtime), {len(stored)} batches:"
        f" median {statistics.median(stored):.1f} s, max {max(stored):.1f} s (target <= {target:g} s)"
    )
    if query_done:
        print(
            f"  vendor task FINISHED to its query task ended (Airflow end_date):"
            f" median {statistics.median(query_done):.1f} s, max {max(query_done):.1f} s"
        )


def worker_settings(start_method: str, preload: bool) -> dict[str, str]:
    """The Airflow settings for how the LocalExecutor starts its workers, and whether task processes inherit
    the heavy imports (plugins/callfilter_preload.py: loaded by the scheduler before it forks its workers, or
    by the forkserver it names)."""
    settings = {"AIRFLOW__SCHEDULER__MP_START_METHOD": start_method}
    if not preload:
        settings["CALLFILTER_PRELOAD_IMPORTS"] = "0"
    elif start_method == "forkserver":
        settings["AIRFLOW__CORE__MP_FORKSERVER_PRELOAD"] = "callfilter_preload"
    return settings


def fanout(args: argparse.Namespace) -> None:
    batchid = "BENCH-FANOUT"
    numbers = args.batches * args.batch_size
    options = ["--call-seconds", "0", "--seed", str(args.seed), "--max-unfinished", str(args.fanout_cap),
               "--rate-limit", "0"]  # fmt: skip
    print(
        f"fanout: {args.batches} batches of {args.batch_size} ({numbers} numbers), instant vendor, "
        f"cap {args.fanout_cap}, poll {args.poll:g} s"
        + f", workers by {args.start_method}, task processes "
        + ("inherit the preloaded imports" if args.preload else "import for themselves (no preload)")
    )
    results = {}
    with (
        realstack.vendor_stack(
            "callfilter_bench_fanout",
            {batchid: realstack.telnos(numbers)},
            options,
            dags={f"{NOOP_DAG_ID}.py": NOOP_DAG},
            CALLFILTER_POLL_INTERVAL=str(args.poll),
            CALLFILTER_VENDOR_CAP=str(args.fanout_cap),
            CALLFILTER_DIAL_SECONDS_PER_NUMBER="0",
            **worker_settings(args.start_method, args.preload),
        ) as bench,
        realstack.CpuSampler(bench.cpu_roots()) as cpu,
    ):
        stack = bench.stack
        started = time.time()
        run_id = stack.trigger(NOOP_DAG_ID, {"batches": args.batches})
        state = bench.wait_for_run(NOOP_DAG_ID, run_id, args.noop_timeout, FANOUT_POLL)
        results["no-op DAG"] = (
            state,
            time.time() - started,
            *mapped_span(stack.task_instances(NOOP_DAG_ID, run_id)),
        )
        conf = {"batchid": batchid, "batch_size": args.batch_size, "calling_hours": ""}
        run_id, started, ended, state = bench.run_call_filter(conf, args.stuck_after, interval=FANOUT_POLL)
        results["call_filter"] = (
            state,
            ended - started,
            *mapped_span(stack.task_instances("call_filter", run_id)),
        )
        stats = bench.simulator_stats()
    print(
        f"  vendor: {stats['tasks_created']} tasks, 42902 answers {stats['too_many_tasks_answers']}; "
        f"call_filter's most task instances deferred at once (triggers): {bench.most_deferred}"
    )
    spans, used = {}, {}
    for name, (state, total, count, first, last) in results.items():
        spans[name] = (last - first) / count
        used[name] = {part: seconds / count for part, seconds in cpu.between(first, last).items()}
        print(
            f"  {name:12} {state:8} total {total:7.1f} s, {count} mapped task instances in {last - first:7.1f} s:"
            f" {spans[name]:.3f} s each"
        )
    print(
        f"per mapped task instance: {spans['call_filter'] / spans['no-op DAG']:.2f}x the no-op DAG's (target <= 1.3x)"
    )
    print(
        "CPU seconds per mapped task instance, from the first one's start to the last one's end, by process tree:"
    )
    print(f"  {'process tree':26} {'no-op DAG':>10} {'call_filter':>12} {'added':>8}")
    for part in used["no-op DAG"]:
        noop, ours = used["no-op DAG"][part], used["call_filter"][part]
        if part.endswith(": children") and max(noop, ours) < 0.0005:
            continue
        print(f"  {part:26} {noop:10.3f} {ours:12.3f} {ours - noop:+8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("latency", "fanout"), help="run one part (default: both)")
    parser.add_argument("--numbers", type=int, default=100_000, help="latency: numbers of the filter task")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--cap", type=int, default=5, help="latency: CALLFILTER_VENDOR_CAP = the vendor's cap"
    )
    parser.add_argument(
        "--call-seconds",
        type=float,
        default=3.0,
        help="latency: mean call duration (3 s on 500 lines: a vendor task of 1000 numbers dials ~30 s)",
    )
    parser.add_argument("--lines", type=int, default=500, help="latency: vendor lines (simulator)")
    parser.add_argument(
        "--stop-after",
        type=int,
        help="latency: stop measuring once this many batches are stored (default: the whole run)",
    )
    parser.add_argument("--poll", type=float, default=2.0, help="CALLFILTER_POLL_INTERVAL, seconds")
    parser.add_argument("--batches", type=int, default=1000, help="fanout: batches (of --batch-size numbers)")
    parser.add_argument(
        "--fanout-cap",
        type=int,
        default=50,
        help="fanout: CALLFILTER_VENDOR_CAP = the simulator's --max-unfinished, high enough not to bind",
    )
    parser.add_argument(
        "--noop-timeout", type=float, default=4 * 3600, help="fanout: seconds for the no-op run"
    )
    parser.add_argument(
        "--start-method",
        choices=("fork", "forkserver"),
        default="fork",
        help="fanout: how the LocalExecutor starts its workers ([scheduler] mp_start_method; default fork)",
    )
    parser.add_argument(
        "--no-preload",
        dest="preload",
        action="store_false",
        help="fanout: CALLFILTER_PRELOAD_IMPORTS=0, task processes import for themselves (both DAGs)",
    )
    realstack.add_run_options(parser)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # stop the stack on the way out
    print(load())
    if args.only in (None, "latency"):
        latency(args)
        print(load())
    if args.only in (None, "fanout"):
        fanout(args)
        print(load())


if __name__ == "__main__":
    main()
