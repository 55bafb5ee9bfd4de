"""call_filter_cancel through real Airflow while a call_filter run dials: no further batch is sent, the
dialing vendor task is cancelled, what it dialed is stored and applied, and the task says cancelled."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from callfilter_dev import devenv
from tests.conftest import RUN_DIR

pytestmark = pytest.mark.dag


def test_cancel_stops_dialing_and_keeps_what_was_dialed(airflow_home, db, start_simulator, tmp_path):
    devenv.load_case_tel(db.conn, "CANCEL-1", [f"1350000{i:04d}" for i in range(80)])
    # One line, 2.5 s calls: each of the 4 batches of 20 dials for ~50 s, one vendor task at a time.
    sim = start_simulator("--call-seconds", "2.5", "--lines", "1", "--rate-limit", "0", "--seed", "3")
    env = devenv.airflow_env(
        airflow_home, tmp_path / "files", db.conn_uri(), sim.conn_uri(),
        CALLFILTER_POLL_INTERVAL="0.5", CALLFILTER_VENDOR_CAP="1",
    )  # fmt: skip
    conf = {"batchid": "CANCEL-1", "batch_size": 20, "calling_hours": "", "creator": "ops"}
    # The cancel DAG runs in an Airflow home of its own (a copy): two `dags test` on one SQLite metadata file
    # at once would lock each other out.
    cancel_home = tmp_path / "cancel-airflow"
    shutil.copytree(airflow_home, cancel_home, ignore=shutil.ignore_patterns("logs"))
    log_path = RUN_DIR / "dag-run-cancel-1.log"
    with open(log_path, "w") as log_file:
        run = subprocess.Popen(
            [str(devenv.Path(sys.executable).parent / "airflow"), "dags", "test", "call_filter", "-c", json.dumps(conf)],
            env=env, cwd=devenv.ROOT, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while not db.value("select count(*) from call_filter_send_batch_log where task_id is not null"):
                assert run.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.5)
            task_id = db.value("select id from call_filter_task where batchid = 'CANCEL-1'")
            cancel_env = {**env, "AIRFLOW_HOME": str(cancel_home)}
            conf = {"filter_task_id": task_id, "reason": "wrong list"}
            cancelled = devenv.airflow(
                cancel_env, "dags", "test", "call_filter_cancel", "-c", json.dumps(conf)
            )
            assert "state=success" in cancelled.stdout + cancelled.stderr
            run.wait(300)
        finally:
            if run.poll() is None:
                run.kill()
    output = log_path.read_text()
    assert run.returncode != 0 or "state=failed" in output  # the run ends failed: the task was cancelled

    task = db.rows("select * from call_filter_task")[0]
    assert task["status"] == 5 and task["message"].startswith("cancelled by call_filter_cancel run ")
    assert task["message"].endswith(": wrong list")
    assert "was cancelled by call_filter_cancel run" in output

    stats = sim.stats()
    vendor_tasks = stats["tasks"]
    # No batch was sent after the cancel; the one dialing was cancelled through the API.
    assert all(t["created_at"] < task["runendtime"].timestamp() for t in vendor_tasks)
    assert len(vendor_tasks) < 4
    assert [t["status"] for t in vendor_tasks].count("CANCELLED") == 1
    assert stats["numbers_dialed"] < 80

    # What was dialed is stored, and its verdicts are in case_tel.
    stored = db.value("select count(*) from call_filter_send_queryres")
    assert stored == stats["numbers_dialed"]  # a result for every number dialed, none for the rest
    assert db.value("select count(*) from case_tel where valid_checked_at is not null") == stored
    logs = db.rows("select * from call_filter_send_batch_log order by batch_order")
    assert [r["vendor_status"] for r in logs if r["task_id"]].count("CANCELLED") == 1
    assert not db.value("select count(*) from call_filter_send_batch_log where holds_slot")
