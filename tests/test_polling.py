"""The poller's claim, checks and release (callfilter.polling) on real PostgreSQL, with real concurrent
transactions."""

from __future__ import annotations

import threading
import time
from datetime import UTC

import pytest

from callfilter import db as cfdb
from callfilter import polling
from callfilter_dev import devenv


def register(db, batchid: str, creator: str = "crm", **columns) -> int:
    names = ["status", "batchid", "creator", *columns]
    values = [0, batchid, creator, *columns.values()]
    query = f"insert into call_filter_task ({', '.join(names)}) values ({', '.join(['%s'] * len(values))}) returning id"
    return db.value(query, values)


def connect(db):
    from psycopg.rows import dict_row

    return db.server.connect(db.name, row_factory=dict_row, autocommit=True)


def test_claims_oldest_first_at_most_the_limit(db):
    devenv.load_case_tel(db.conn, "P-1", ["13500000001"])
    ids = [register(db, "P-1") for _ in range(4)]
    # The business system's clock, not the id, says which is oldest: here the last inserted.
    db.conn.execute("update call_filter_task set createtime = now() - make_interval(mins => id::int)")
    claimed = polling.claim_tasks(db.conn, limit=2)
    assert [t["id"] for t in claimed] == [ids[3], ids[2]]
    for task in claimed:
        assert (
            task["dag_run_id"]
            == f"poller__task-{task['id']}-{task['createtime'].astimezone(UTC):%Y%m%dT%H%M%S}"
        )
    assert polling.claim_tasks(db.conn, limit=2) and polling.claim_tasks(db.conn, limit=2) == []
    starts = polling.runs_to_start(db.conn)
    assert [s["trigger_run_id"].split("-")[1] for s in starts] == [f"{i}" for i in reversed(ids)]
    assert starts[0]["conf"] == {
        "batchid": "P-1", "creator": "crm", "categoryid": None, "tasktype": None, "batch_size": 1000,
        "max_attempts": 1, "calling_hours": "09:00-21:00", "filter_task_id": ids[3],
    }  # fmt: skip


def test_a_claim_in_progress_is_skipped_by_an_overlapping_poll(db):
    """Two polls at once, on two connections: the second runs while the first's claim is uncommitted."""
    devenv.load_case_tel(db.conn, "P-2", ["13500000001"])
    ids = [register(db, "P-2") for _ in range(6)]
    first_claimed = threading.Event()
    second_done = threading.Event()
    results: dict = {}

    def first() -> None:
        with connect(db) as conn, conn.transaction():
            results["first"] = [r["id"] for r in cfdb.all_rows(conn, "claim_registered_tasks", {"limit": 3})]
            first_claimed.set()
            # Hold the claim open while the other poll claims: it must not wait for this one.
            results["overlapped"] = second_done.wait(10)

    def second() -> None:
        first_claimed.wait(30)
        with connect(db) as conn:
            results["second"] = [t["id"] for t in polling.claim_tasks(conn, limit=10)]
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results["overlapped"]
    assert results["first"] == ids[:3]
    assert results["second"] == ids[3:]  # not blocked, and not the rows the first poll holds
    assert db.value("select count(*) from call_filter_task where dag_run_id is null") == 0


def test_many_simultaneous_polls_claim_each_task_exactly_once(db):
    devenv.load_case_tel(db.conn, "P-3", ["13500000001"])
    ids = {register(db, "P-3") for _ in range(40)}
    barrier = threading.Barrier(4)
    claims: list[list[int]] = []

    def poll() -> None:
        with connect(db) as conn:
            barrier.wait(30)
            for _ in range(10):
                claims.append([t["id"] for t in polling.claim_tasks(conn, limit=3)])
                time.sleep(0.001)

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    claimed = [task_id for claim in claims for task_id in claim]
    assert sorted(claimed) == sorted(ids)  # every task once, none twice
    assert sum(1 for claim in claims if len(claim) > 1) > 1


@pytest.fixture
def legacy_task_table(db):
    """A database whose call_filter_task predates the CHECK constraints: the business system could write
    any batch_size or calling_hours."""
    db.conn.execute("alter table call_filter_task drop constraint call_filter_task_calling_hours_check")
    db.conn.execute("alter table call_filter_task drop constraint call_filter_task_batch_size_check")
    return db


def test_rows_with_bad_data_end_failed_with_their_reason(legacy_task_table):
    db = legacy_task_table
    devenv.load_case_tel(db.conn, "P-4", ["13500000001"])
    good = register(db, "P-4")
    empty = register(db, "  ")
    unknown = register(db, "NO-SUCH-BATCH")
    hours = register(db, "P-4", calling_hours="9-17")
    size = register(db, "P-4", batch_size=5000)
    claimed = polling.claim_tasks(db.conn, limit=10)
    assert [t["id"] for t in claimed] == [good]
    tasks = {r["id"]: r for r in db.rows("select * from call_filter_task")}
    assert tasks[good]["status"] == 0
    for task_id, reason in [
        (empty, "batchid: must be a string of 1-64 characters"),
        (unknown, "batchid NO-SUCH-BATCH has no numbers"),
        (hours, "calling_hours: must be a string"),
        (size, "batch_size: must be an integer from 1 to 1000, got 5000"),
    ]:
        assert tasks[task_id]["status"] == 3, task_id
        assert tasks[task_id]["message"].startswith("call_filter_poller: " + reason), tasks[task_id][
            "message"
        ]
        assert tasks[task_id]["runendtime"] is not None
    assert [s["conf"]["filter_task_id"] for s in polling.runs_to_start(db.conn)] == [good]


def test_tasks_whose_run_no_longer_runs_are_released(db):
    devenv.load_case_tel(db.conn, "P-5", ["13500000001"])
    devenv.load_case_tel(db.conn, "P-6", ["13500000002"], first_telid=2)
    devenv.load_case_tel(db.conn, "P-7", ["13500000003"], first_telid=3)
    running = register(db, "P-5")
    gone = register(db, "P-6")
    failed_at_register = register(db, "P-7")
    not_started = register(db, "P-7")
    db.conn.execute(
        "update call_filter_task set status = 1, dag_run_id = 'manual__a' where id = %s", (running,)
    )
    db.conn.execute("update call_filter_task set status = 1, dag_run_id = 'manual__b' where id = %s", (gone,))
    db.conn.execute(
        "update call_filter_task set dag_run_id = 'poller__task-' || id where id in (%s, %s)",
        (failed_at_register, not_started),
    )
    states = {"manual__a": "running", f"poller__task-{failed_at_register}": "failed"}
    released = polling.release_stale(db.conn, states.get)
    assert sorted(t["id"] for t in released) == [gone, failed_at_register]
    tasks = {r["id"]: r for r in db.rows("select * from call_filter_task")}
    assert (tasks[running]["status"], tasks[not_started]["status"]) == (1, 0)
    assert tasks[gone]["status"] == 3
    assert tasks[gone]["message"] == (
        f"released by call_filter_poller: its call_filter run manual__b no longer exists; "
        f"trigger call_filter with filter_task_id {gone} to continue it"
    )
    assert tasks[failed_at_register]["status"] == 3
    assert f"run poller__task-{failed_at_register} is failed" in tasks[failed_at_register]["message"]
    # Released, the batchid is open again: a new task for it is registered.
    from callfilter.params import validate_params
    from callfilter.registration import register_task

    new = register_task(db.conn, validate_params({"batchid": "P-6"}), "manual__c")
    assert new.filter_task_id not in (running, gone)
