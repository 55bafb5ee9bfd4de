"""Memory: the peak RSS of each step's process at two sizes of task, on real PostgreSQL, files included.

Each step runs in a fresh child process, as each Airflow task runs in its own, and reports its peak RSS
(VmHWM of /proc/self/status) when it is done: plan, send (every batch, to the in-process vendor of
bench/dataplane.py), store one batch, store every batch in one process, apply_verdicts and finish. The
baseline is a child that imports the same code and opens the same connection and storage, and does nothing.
Target: flat within 10% across sizes: no step holds a whole task's rows.

    .venv/bin/python bench/memory.py                         # 10,000 and 100,000 numbers (~3 min)
    .venv/bin/python bench/memory.py --sizes 10000 1000000   # to a million (~5 min on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dataplane
from callfilter import files, verdicts
from callfilter.reports import finish_task
from callfilter_dev import devenv

STEPS = ("baseline", "plan", "send", "store one batch", "store every batch", "apply_verdicts", "finish")


def peak_rss_kb() -> int:
    """This process's peak resident set size so far (VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_step(step: str, conninfo: str, files_root: str, filter_task_id: int, seed: int) -> None:
    """One step, in this (child) process."""
    dataplane.quiet()
    storage = files.Storage(files_root)
    with dataplane.connect(conninfo) as conn:
        if step == "plan":
            dataplane.plan(conn, filter_task_id, storage)
        elif step == "send":
            for batch in dataplane.batches(conn, filter_task_id):
                dataplane.send(conn, storage, batch, seed)
        elif step.startswith("store"):
            planned = dataplane.batches(conn, filter_task_id)
            for batch in planned[:1] if step == "store one batch" else planned:
                log, vendor = dataplane.vendor_for(conn, storage, batch, seed)
                dataplane.store(conn, storage, log, vendor)
                del log, vendor
        elif step == "apply_verdicts":
            verdicts.apply_verdicts(conn, filter_task_id)
        elif step == "finish":
            finish_task(conn, filter_task_id, storage)
        elif step != "baseline":
            raise ValueError(f"no step {step!r}")
    print(json.dumps({"step": step, "peak_kb": peak_rss_kb()}))


def measure(step: str, conninfo: str, files_root: Path, filter_task_id: int, seed: int) -> tuple[int, float]:
    """A step in a fresh child process: its peak RSS (KiB) and how long the child took."""
    cmd = [sys.executable, __file__, "--child", step, "--conninfo", conninfo, "--files", str(files_root),
           "--filter-task-id", str(filter_task_id), "--seed", str(seed)]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"{step} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_kb"], took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="numbers per task")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--conninfo", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    parser.add_argument("--filter-task-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_step(args.child, args.conninfo, args.files, args.filter_task_id, args.seed)
        return

    dataplane.quiet()
    dataplane.RUN_DIR.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="callfilter-memory-"))
    database = devenv.Database(dataplane.RUN_DIR / "pgdata")
    name = "callfilter_bench_memory"
    peaks: dict[str, dict[int, int]] = {step: {} for step in STEPS}
    try:
        for size in args.sizes:
            filter_task_id = dataplane.prepare_database(database, name, size, args.seed)
            conninfo = dataplane.conninfo(database, name)
            for step in STEPS:
                peak, took = measure(step, conninfo, work / str(size) / "files", filter_task_id, args.seed)
                peaks[step][size] = peak
                print(
                    f"{size:>9,} numbers  {step:<18} peak RSS {peak / 1024:7.1f} MiB  ({took:.1f} s)",
                    flush=True,
                )
            shutil.rmtree(work / str(size), ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        database.create_database(name)  # empty again: the space goes back
        if database.server is not None:  # the embedded server this run started stops with it
            database.server.cleanup_mode = "stop"
            database.server.cleanup()

    sizes = args.sizes
    print()
    print("| step | " + " | ".join(f"{size:,} numbers" for size in sizes) + " | growth | target <= 10% |")
    print("|---|" + "---|" * (len(sizes) + 2))
    for step in STEPS:
        row = peaks[step]
        growth = (row[sizes[-1]] - row[sizes[0]]) / row[sizes[0]]
        verdict = "flat" if abs(growth) <= 0.10 else "**not flat**"
        cells = " | ".join(f"{row[size] / 1024:.1f} MiB" for size in sizes)
        print(f"| {step} | {cells} | {100 * growth:+.1f}% | {verdict} |")


if __name__ == "__main__":
    main()
