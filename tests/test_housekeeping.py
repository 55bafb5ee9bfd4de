"""call_filter_housekeeping through real Airflow on real PostgreSQL and real files: only old files of ended
tasks go; vendor tasks unfinished past the query timeout are reported."""

from __future__ import annotations

import os
import time

import pytest

from callfilter_dev import devenv
from tests.conftest import RUN_DIR

pytestmark = pytest.mark.dag

DAY = 86400


def write(path, age_days: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    when = time.time() - age_days * DAY
    os.utime(path, (when, when))


def task(db, status: int, batch_statuses: tuple[int, ...] = ()) -> int:
    task_id = db.value(
        "insert into call_filter_task (status, step, batchid) values (%s, 5, 'H') returning id", (status,)
    )
    for order, batch_status in enumerate(batch_statuses, 1):
        db.conn.execute(
            "insert into call_filter_send_batch (status, filter_task_id, batch_order, totalnum, creator) "
            "values (%s, %s, %s, 1, 'ops')",
            (batch_status, task_id, order),
        )
    return task_id


def test_housekeeping_deletes_only_old_files_of_ended_tasks(airflow_home, db, simulator, tmp_path):
    files = tmp_path / "files"
    finished = task(db, 2, (2,))
    cancelled = task(db, 5, (3,))
    running = task(db, 1, (1,))
    redialable = task(db, 4, (2, 3))  # finished with errors, a batch left to re-dial
    registered = task(db, 0)
    names = [
        "requests/batch-0001.json",
        "batches/batch-0001.xlsx",
        "results/batch-0001.json",
        "ops-task-N-summary.xlsx",
    ]
    for task_id in (finished, cancelled, running, redialable, registered):
        for name in names:
            write(files / f"task-{task_id}" / "old" / name.replace("N", str(task_id)), age_days=31)
            write(files / f"task-{task_id}" / "new" / name.replace("N", str(task_id)), age_days=29)
    write(files / "notes.txt", age_days=400)  # not a task's file: left alone

    # A vendor task that dials on past the query timeout (1 h here), one cancelled at it, one in time.
    batch_ids = [r["id"] for r in db.rows("select id from call_filter_send_batch order by id")]
    for batch_id, vendor_task, age, vendor_status in [
        (batch_ids[0], "T-OVERDUE", "2 hours", None),
        (batch_ids[1], "T-TIMEDOUT", "3 hours", "TIMEOUT"),
        (batch_ids[2], "T-INTIME", "10 minutes", None),
    ]:
        db.conn.execute(
            "insert into call_filter_send_batch_log (filter_task_id, filter_send_batch_id, batch_order, totalnum, "
            "creator, task_id, send_recvflag, send_recvtime, vendor_status, query_recvtime) "
            "select filter_task_id, id, batch_order, 1, 'ops', %s, 1, now() - %s::interval, %s::varchar, "
            "case when %s::varchar is null then null else now() end from call_filter_send_batch where id = %s",
            (vendor_task, age, vendor_status, vendor_status, batch_id),
        )

    env = devenv.airflow_env(
        airflow_home, files, db.conn_uri(), simulator.conn_uri(), CALLFILTER_QUERY_TIMEOUT="3600"
    )
    result = devenv.airflow(env, "dags", "test", "call_filter_housekeeping", check=False)
    output = result.stdout + result.stderr
    (RUN_DIR / "dag-run-housekeeping.log").write_text(output)
    assert result.returncode == 0 and "state=success" in output, output[-5000:]

    left = {str(p.relative_to(files)) for p in files.rglob("*") if p.is_file()}
    for task_id in (finished, cancelled):
        assert not [p for p in left if p.startswith(f"task-{task_id}/old/")]
        assert len([p for p in left if p.startswith(f"task-{task_id}/new/")]) == 4
    for task_id in (running, redialable, registered):
        assert len([p for p in left if p.startswith(f"task-{task_id}/")]) == 8
    assert "notes.txt" in left
    assert "removed 8 files older than" in output

    assert "vendor task T-OVERDUE" in output and "still unfinished past the query timeout" in output
    assert "vendor task T-TIMEDOUT" in output and "cancelled by the pipeline at the query timeout" in output
    assert "T-INTIME" not in output
