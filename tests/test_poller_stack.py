"""call_filter_poller under the real Airflow components (tests/stack.py): overlapping polls start exactly one
call_filter run per task the business system registered, and each run screens its task."""

from __future__ import annotations

import threading
import time

import pytest

from callfilter_dev import devenv
from tests.stack import AirflowStack

pytestmark = pytest.mark.stack


def test_overlapping_polls_start_exactly_one_run_per_registered_task(db, simulator, tmp_path):
    for n, batchid in enumerate(("STACK-1", "STACK-2", "STACK-3")):
        devenv.load_case_tel(
            db.conn, batchid, [f"1350000{n}{i:03d}" for i in range(5)], first_telid=n * 10 + 1
        )
        db.conn.execute(
            "insert into call_filter_task (status, batchid, creator, calling_hours, batch_size) "
            "values (0, %s, 'crm', '', 5)",
            (batchid,),
        )
    env = devenv.airflow_env(
        tmp_path / "airflow", tmp_path / "files", db.conn_uri(), simulator.conn_uri(),
        CALLFILTER_POLL_INTERVAL="1",
    )  # fmt: skip
    with AirflowStack(tmp_path / "stack", env, database=db.server) as stack:
        stack.wait_for_dag("call_filter_poller")
        stack.wait_for_dag("call_filter")
        # Two manual polls at the same moment, beside the scheduler's own.
        poll_runs: list[str] = []
        barrier = threading.Barrier(2)

        def trigger() -> None:
            barrier.wait(30)
            poll_runs.append(stack.trigger("call_filter_poller"))

        threads = [threading.Thread(target=trigger) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for run_id in poll_runs:
            assert stack.wait_for_run("call_filter_poller", run_id, timeout=180) == "success"

        deadline = time.monotonic() + 480
        while True:
            runs = stack.api("GET", "dags/call_filter/dagRuns", params={"limit": 100})["dag_runs"]
            if len(runs) >= 3 and all(r["state"] in ("success", "failed") for r in runs):
                break
            assert time.monotonic() < deadline, [(r["dag_run_id"], r["state"]) for r in runs]
            time.sleep(2)
        polls = stack.api("GET", "dags/call_filter_poller/dagRuns", params={"limit": 100})["dag_runs"]

    tasks = db.rows("select * from call_filter_task order by id")
    assert len(polls) >= 2
    assert sorted(r["dag_run_id"] for r in runs) == sorted(t["dag_run_id"] for t in tasks)  # one run each
    assert all(r["state"] == "success" for r in runs), runs
    assert [(t["status"], t["step"]) for t in tasks] == [(2, 5)] * 3
    assert db.value("select count(*) from case_tel where valid_checked_at is null") == 0
    assert simulator.stats()["max_dials_per_number"] == 1
