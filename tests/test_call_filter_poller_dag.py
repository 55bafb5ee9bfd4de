"""call_filter_poller through real Airflow (`airflow dags test`) on real PostgreSQL: it starts one call_filter
run per registered task, never a second one, fails rows with bad data and releases tasks whose run is gone."""

from __future__ import annotations

import json
import re

import pytest

from callfilter_dev import devenv
from tests.conftest import RUN_DIR
from tests.test_call_filter_dag import run_dag

pytestmark = pytest.mark.dag


def poll(airflow_home, db, sim, tmp_path, **extra) -> str:
    env = devenv.airflow_env(airflow_home, tmp_path / "files", db.conn_uri(), sim.conn_uri(), **extra)
    result = devenv.airflow(env, "dags", "test", "call_filter_poller", check=False)
    output = result.stdout + result.stderr
    (RUN_DIR / f"dag-run-poller-{len(list(RUN_DIR.glob('dag-run-poller-*')))}.log").write_text(output)
    assert result.returncode == 0 and "state=success" in output, output[-5000:]
    return output


def call_filter_runs(airflow_home, tmp_path) -> dict[str, dict]:
    env = devenv.airflow_env(airflow_home, tmp_path / "files", "{}", "{}")
    listed = devenv.airflow(env, "dags", "list-runs", "call_filter", "-o", "json").stdout
    line = [line for line in listed.splitlines() if line.startswith("[{") or line == "[]"][-1]
    return {run["run_id"]: run for run in json.loads(line)}


def test_poller_starts_one_run_per_registered_task_and_never_a_second(
    airflow_home,
    db,
    simulator,
    tmp_path,
):
    devenv.load_case_tel(db.conn, "POLL-1", ["13500000001", "13500000002"])
    devenv.load_case_tel(db.conn, "POLL-2", ["13500000003"], first_telid=3)
    ids = [
        db.value(
            "insert into call_filter_task (status, batchid, creator) values (0, %s, 'crm') returning id", (b,)
        )
        for b in ("POLL-1", "POLL-2", "POLL-2")
    ]
    output = poll(airflow_home, db, simulator, tmp_path, CALLFILTER_POLLER_MAX_RUNS="2")
    tasks = {r["id"]: r for r in db.rows("select * from call_filter_task")}
    run_ids = {tasks[i]["dag_run_id"] for i in ids[:2]}
    assert tasks[ids[2]]["dag_run_id"] is None  # at most 2 per poll: the third waits for the next one
    runs = call_filter_runs(airflow_home, tmp_path)
    assert run_ids <= set(runs)
    for task_id in ids[:2]:
        run = runs[tasks[task_id]["dag_run_id"]]
        assert run["state"] == "queued"  # no scheduler here: the run waits for one
        assert re.fullmatch(rf"poller__task-{task_id}-\d{{8}}T\d{{6}}", run["run_id"])
    assert output.count("Dag Run triggered successfully") == 2

    # The next poll: the third task's run starts; the first two are not started again.
    output = poll(airflow_home, db, simulator, tmp_path, CALLFILTER_POLLER_MAX_RUNS="2")
    assert output.count("Dag Run triggered successfully") == 1
    assert output.count("Dag Run already exists, skipping") == 2
    third = db.value("select dag_run_id from call_filter_task where id = %s", (ids[2],))
    runs_after = call_filter_runs(airflow_home, tmp_path)
    assert set(runs_after) - set(runs) == {third}
    assert db.value("select count(*) from call_filter_task where status = 0") == 3  # each run registers it


def test_poller_releases_a_task_whose_run_failed_or_is_gone(airflow_home, db, simulator, tmp_path):
    # A call_filter run that failed (on a batchid without numbers), with a task left "running" by it, as
    # when a run is marked failed in the UI without its callbacks running.
    ok, output = run_dag(airflow_home, db, simulator, tmp_path, {"batchid": "NOPE", "calling_hours": ""})
    assert not ok
    failed_run = re.search(r"run_id=(\S+?)[,\s]", output) or re.search(r"DagRun \S+ @ \S+: (\S+?),", output)
    failed_run_id = failed_run.group(1)
    assert call_filter_runs(airflow_home, tmp_path)[failed_run_id]["state"] == "failed"
    devenv.load_case_tel(db.conn, "REL-1", ["13500000001"])
    devenv.load_case_tel(db.conn, "REL-2", ["13500000002"], first_telid=2)
    failed = db.value(
        "insert into call_filter_task (status, batchid, dag_run_id) values (1, 'REL-1', %s) returning id",
        (failed_run_id,),
    )
    gone = db.value(
        "insert into call_filter_task (status, batchid, dag_run_id) values (1, 'REL-2', 'manual__deleted') "
        "returning id"
    )
    poll(airflow_home, db, simulator, tmp_path)
    tasks = {r["id"]: r for r in db.rows("select * from call_filter_task")}
    assert tasks[failed]["status"] == 3
    assert f"its call_filter run {failed_run_id} is failed" in tasks[failed]["message"]
    assert tasks[gone]["status"] == 3
    assert "its call_filter run manual__deleted no longer exists" in tasks[gone]["message"]
