"""Saturation: one filter task of 20 batches at the vendor's pace, through the real Airflow components.

Prints the makespan (trigger to the run's end) against the ideal: the time the vendor alone needs for the
same numbers at its capacity, its lines or its cap on unfinished tasks, whichever binds. The ideal comes
from the simulator's own model (the same call durations and lines) with a new vendor task created the
instant a slot frees, and no pipeline at all.

    .venv/bin/python bench/saturation.py            # 20 batches of 50, calls of ~40 s, cap 5 (~5 min)
    .venv/bin/python bench/saturation.py --help
"""

from __future__ import annotations

import argparse
import statistics

import realstack
from callfilter_dev.simulator import CallCenter, CreateTaskRequest, SimulatorConfig


def vendor_alone(numbers: list[str], batch_size: int, cap: int, call_seconds: float, lines: int, seed: int):
    """The vendor's makespan for these batches with no pipeline: each vendor task created the instant the
    cap allows. Returns (makespan, per-task durations)."""
    now = [0.0]
    center = CallCenter(
        SimulatorConfig(call_seconds=call_seconds, lines=lines, seed=seed, max_unfinished=cap, rate_limit=0),
        clock=lambda: now[0],
    )
    batches = [numbers[i : i + batch_size] for i in range(0, len(numbers), batch_size)]
    running, durations, order = [], [], 0
    while batches or running:
        while batches and len(running) < cap:
            order += 1
            batch = batches.pop(0)
            body = CreateTaskRequest(
                request_id=f"ideal-{order}",
                numbers=[{"nid": str(i + 1), "phone": p} for i, p in enumerate(batch)],
            )
            running.append(center.get_task(center.create_task(body)["task_id"]))
        now[0] = min(task.ended_at() for task in running)
        for task in [t for t in running if t.ended_at() <= now[0]]:
            running.remove(task)
            durations.append(task.ended_at() - task.created_at)
    return now[0], durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--call-seconds", type=float, default=40.0, help="mean call duration (simulator)")
    parser.add_argument("--lines", type=int, default=300, help="vendor lines (simulator)")
    parser.add_argument(
        "--cap", type=int, default=5, help="vendor's unfinished-task cap = CALLFILTER_VENDOR_CAP"
    )
    parser.add_argument("--poll", type=float, default=4.0, help="CALLFILTER_POLL_INTERVAL, seconds")
    realstack.add_run_options(parser)
    args = parser.parse_args()

    numbers = realstack.telnos(args.batches * args.batch_size)
    ideal, durations = vendor_alone(
        numbers, args.batch_size, args.cap, args.call_seconds, args.lines, args.seed
    )
    print(
        f"vendor alone: {len(durations)} vendor tasks of {args.batch_size} numbers, "
        f"median {statistics.median(durations):.0f} s each, cap {args.cap}, {args.lines} lines: ideal {ideal:.1f} s"
    )

    options = ["--call-seconds", str(args.call_seconds), "--lines", str(args.lines), "--seed", str(args.seed),
               "--max-unfinished", str(args.cap)]  # fmt: skip
    with realstack.vendor_stack(
        "callfilter_bench",
        {"BENCH-SAT": numbers},
        options,
        CALLFILTER_POLL_INTERVAL=str(args.poll),
        CALLFILTER_VENDOR_CAP=str(args.cap),
        CALLFILTER_DIAL_SECONDS_PER_NUMBER="0",
    ) as bench:
        conf = {"batchid": "BENCH-SAT", "batch_size": args.batch_size, "calling_hours": ""}
        run_id, started, ended, state = bench.run_call_filter(conf, args.stuck_after)
        stats = bench.simulator_stats()
    makespan = ended - started
    tasks = stats["tasks"]
    first_created = min(t["created_at"] for t in tasks) - started
    last_ended = ended - max(t["ended_at"] for t in tasks)
    # A freed slot's refill: each vendor task after the first `cap` against the end that made room for it.
    created = sorted(t["created_at"] for t in tasks)[args.cap :]
    ends = sorted(t["ended_at"] for t in tasks)[: len(created)]
    refills = [c - e for c, e in zip(created, ends, strict=True)]
    print(f"run {run_id}: {state}")
    print(f"  trigger to first vendor task:        {first_created:6.1f} s")
    print(f"  last vendor task ended to run end:   {last_ended:6.1f} s")
    if refills:
        print(
            f"  vendor task ended to the next created: median {statistics.median(refills):.1f} s, "
            f"max {max(refills):.1f} s ({len(refills)} refills)"
        )
    print(
        f"  42902 answers: {stats['too_many_tasks_answers']}, most unfinished at once: {stats['max_unfinished_seen']}"
    )
    print(f"makespan {makespan:.1f} s, ideal {ideal:.1f} s: {makespan / ideal:.2f}x (target <= 1.10x)")


if __name__ == "__main__":
    main()
