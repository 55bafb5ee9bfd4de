"""`make demo`: screen batch DEMO-1 end to end on embedded defaults and print where the results are.

Embedded PostgreSQL (or CALLFILTER_DATABASE_URL), the bundled vendor simulator, and a local Airflow
(SQLite metadata) running `airflow dags test call_filter`. Everything lands under .demo/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from psycopg.rows import dict_row  # noqa: E402

from callfilter.progress import last_task_id  # noqa: E402
from callfilter.verdicts import verdict_counts  # noqa: E402
from callfilter_dev import devenv  # noqa: E402
from callfilter_dev.watch import RunStuck, RunWatcher, stuck_after_default  # noqa: E402

APP_ID, APP_SECRET = "demo-app", "demo-secret"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--numbers", type=int, default=3000, help="numbers in batch DEMO-1")
    parser.add_argument("--batch-size", type=int, default=500, help="numbers per vendor task")
    parser.add_argument("--call-seconds", type=float, default=0.05, help="simulated mean call duration")
    parser.add_argument(
        "--stuck-after",
        type=float,
        default=stuck_after_default(),
        help="seconds with nothing moved before the run is reported stuck and stopped "
        "(default: CALLFILTER_STUCK_AFTER or %(default)s)",
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        default=5.0,
        help="seconds between progress lines when the output is not a terminal (default %(default)s)",
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / ".demo", help="where everything lands")
    args = parser.parse_args()
    demo = args.workdir.resolve()
    demo.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    # The database is made anew below: files of an earlier demo (same task ids) would be stale.
    shutil.rmtree(demo / "files", ignore_errors=True)
    print("1/5 starting PostgreSQL ...", flush=True)
    database = devenv.Database(demo / "pgdata")
    database.create_database("callfilter")
    numbers = devenv.sample_numbers(args.numbers, seed=2026)
    blacklisted = sorted({n for n in numbers if n.isascii() and n.isdigit() and len(n) == 11})[:5]
    with database.connect("callfilter") as conn:
        devenv.apply_schema(conn)
        devenv.load_case_tel(conn, "DEMO-1", numbers)
        dnc = devenv.sample_dnc(numbers)
        devenv.load_dnc(conn, dnc)
    print(
        f"    batch DEMO-1: {len(numbers)} numbers loaded into case_tel, {len(dnc)} on the do-not-call list",
        flush=True,
    )

    print("2/5 starting the vendor simulator ...", flush=True)
    port = devenv.free_port()
    simulator = devenv.start_simulator(
        port, APP_ID, APP_SECRET, "--call-seconds", str(args.call_seconds), "--lines", "60",
        "--blacklist", ",".join(blacklisted), log_path=demo / "simulator.log",
    )  # fmt: skip
    try:
        env = devenv.airflow_env(
            demo / "airflow",
            demo / "files",
            database.airflow_conn("callfilter"),
            devenv.callcenter_conn(port, APP_ID, APP_SECRET),
            CALLFILTER_POLL_INTERVAL="1",
        )
        print("3/5 preparing Airflow (metadata database) ...", flush=True)
        devenv.prepare_airflow(env)
        conf = {"batchid": "DEMO-1", "creator": "demo", "batch_size": args.batch_size, "calling_hours": ""}
        print(f"4/5 airflow dags test call_filter -c '{json.dumps(conf)}' ...", flush=True)
        if not run_and_watch(database, env, conf, demo / "airflow-run.log", args):
            return 1
    finally:
        simulator.terminate()

    print("5/5 results", flush=True)
    with database.connect("callfilter", row_factory=dict_row) as conn:
        task = conn.execute(
            "select id, totalnum, runendtime - runbegintime as took from call_filter_task "
            "where batchid = 'DEMO-1' order by id desc limit 1"
        ).fetchone()
        counts = verdict_counts(conn, "DEMO-1")
        reasons = conn.execute(
            "select valid_reason, count(*) as n from case_tel where batchid = 'DEMO-1' group by 1 order by 2 desc"
        ).fetchall()
        batches = conn.execute(
            "select count(*) as n from call_filter_send_batch where filter_task_id = %s", (task["id"],)
        ).fetchone()["n"]
    files = demo / "files" / f"task-{task['id']}"
    print(
        f"    filter task {task['id']}: {task['totalnum']} numbers screened in {batches} vendor tasks, "
        f"run took {task['took']}"
    )
    print(f"    valid {counts['valid']}, invalid {counts['invalid']}, unknown {counts['unknown']}")
    print("    by reason: " + ", ".join(f"{r['valid_reason'] or 'none'} {r['n']}" for r in reasons))
    print(f"    summary:   {next(files.glob('*-summary.xlsx'))}")
    print(f"    files:     {files}/ (requests/*.json, batches/*.xlsx, results/*.json|xlsx)")
    print(f"    Airflow log: {demo / 'airflow-run.log'}")
    if database.server is not None:
        print(f"    database:  psql -h {database.params['host']} -U postgres callfilter")
    print(f"demo finished in {time.monotonic() - started:.0f} s")
    return 0


def run_and_watch(database: devenv.Database, env: dict[str, str], conf: dict, log_path: Path, args) -> bool:
    """Run call_filter (no time limit), showing its progress from the batch log until it ends; a run in
    which nothing moved for --stuck-after seconds is reported with what it waited on, and stopped."""
    with database.connect("callfilter", row_factory=dict_row) as conn:
        after = last_task_id(conn)
    process = devenv.airflow_process(
        env, "dags", "test", "call_filter", "-c", json.dumps(conf), log_path=log_path
    )
    watcher = RunWatcher(
        lambda: database.connect("callfilter", row_factory=dict_row, autocommit=True),
        conf["batchid"],
        after_task_id=after,
        stuck_after=args.stuck_after,
        line_every=args.progress_every,
    )
    try:
        watcher.watch(lambda: process.poll() is not None)
    except RunStuck as stuck:
        devenv.stop_process(process)
        print(f"call_filter {stuck}", flush=True)
        if stuck.filter_task_id is not None:
            print(
                f"filter task {stuck.filter_task_id} is left as it stands in the database: a run with "
                f'"filter_task_id": {stuck.filter_task_id}, or clearing the run\'s tasks, continues it. '
                f"Airflow log: {log_path}"
            )
        return False
    finally:
        devenv.stop_process(process)
    output = log_path.read_text(errors="replace")
    if process.returncode != 0 or "state=success" not in output.replace(" ", ""):
        print(f"call_filter failed; see {log_path}\n{output[-3000:]}")
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
