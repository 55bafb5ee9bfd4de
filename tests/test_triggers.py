"""The triggers in the providers' pattern: a serialize round trip, and `run()` against the simulator over
real HTTP yielding each end event."""

from __future__ import annotations

import asyncio
import time

import pytest
from airflow.sdk.module_loading import import_string

from callfilter import codes
from callfilter.triggers import ERROR, VendorSlotTrigger, VendorTaskTrigger
from callfilter.vendor import VendorHook

NUMBERS = [{"nid": f"{i:06d}", "phone": str(13600000000 + i)} for i in range(4)]


def first_event(trigger, timeout: float = 15.0) -> dict:
    async def run() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(run(), timeout))


@pytest.mark.parametrize(
    "trigger",
    [
        VendorTaskTrigger("T1", "callcenter_default", 5.0, 1_900_000_000.0, window_closes=1_800_000_000.0),
        VendorTaskTrigger("T2", "other_conn", 60.0, 1_900_000_000.0),
        VendorSlotTrigger(log_id=12, cap=5, poll_interval=2.0, vendor_timeout=3600.0, db_conn_id="other_db"),
    ],
)
def test_a_trigger_serializes_to_itself(trigger):
    classpath, kwargs = trigger.serialize()
    assert classpath.startswith("callfilter.triggers.")
    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


@pytest.fixture
def vendor(start_simulator):
    start_simulator(
        "--call-seconds", "0", "--rate-limit", "0", "--stuck-tasks=-stuck$", "--fail-tasks=-fail$",
    )  # fmt: skip
    hook = VendorHook()
    return lambda request_id: hook.create_task(request_id, request_id, NUMBERS)["task_id"]


def waiting_for(vendor_task_id: str, deadline_in: float = 60.0, window_closes_in: float | None = None):
    now = time.time()
    return VendorTaskTrigger(
        vendor_task_id,
        "callcenter_default",
        poll_interval=0.1,
        deadline=now + deadline_in,
        window_closes=now + window_closes_in if window_closes_in is not None else None,
    )


def test_a_vendor_task_that_ends_yields_its_end_status(vendor):
    done = vendor("cf-t-done")
    assert first_event(waiting_for(done)) == {"status": "FINISHED", "vendor_task_id": done}
    failed = vendor("cf-t-fail")
    assert first_event(waiting_for(failed)) == {"status": "FAILED", "vendor_task_id": failed}
    cancelled = vendor("cf-t-cancel-stuck")
    VendorHook().cancel_task(cancelled)
    assert first_event(waiting_for(cancelled)) == {"status": "CANCELLED", "vendor_task_id": cancelled}


def test_a_vendor_task_past_its_deadline_or_its_calling_window_yields_timeout_or_window_closed(vendor):
    stuck = vendor("cf-t-1-stuck")
    started = time.monotonic()
    assert first_event(waiting_for(stuck, deadline_in=0.5)) == {
        "status": codes.VendorEnd.TIMED_OUT,
        "vendor_task_id": stuck,
    }
    assert 0.4 <= time.monotonic() - started < 5
    assert first_event(waiting_for(stuck, deadline_in=60, window_closes_in=0.3)) == {
        "status": codes.VendorEnd.WINDOW_CLOSED,
        "vendor_task_id": stuck,
    }


def test_a_vendor_task_found_cancelled_after_its_window_closed_or_its_deadline_was_cancelled_for_that(vendor):
    # An earlier try of the query cancelled it when the window closed (or at its deadline), then died before
    # storing what was dialed: the next try's trigger reports why it was cancelled, so the rest goes out again.
    cancelled = vendor("cf-t-2-stuck")
    VendorHook().cancel_task(cancelled)
    assert first_event(waiting_for(cancelled, window_closes_in=-1))["status"] == codes.VendorEnd.WINDOW_CLOSED
    assert first_event(waiting_for(cancelled, deadline_in=-1))["status"] == codes.VendorEnd.TIMED_OUT
    assert first_event(waiting_for(cancelled, window_closes_in=60))["status"] == "CANCELLED"


def test_a_final_vendor_error_yields_error_with_the_reason(vendor):
    event = first_event(waiting_for("T-unknown"))
    assert event["status"] == ERROR and event["vendor_task_id"] == "T-unknown"
    assert "40401" in event["message"]


def test_many_sends_waiting_for_a_slot_ask_the_vendor_and_the_database_as_often_as_one_would(
    start_simulator, db, storage, monkeypatch
):
    # 10 filter tasks with 5 sends each waiting behind 2 dialing vendor tasks, in one triggerer (one loop).
    from callfilter import db as dbm
    from callfilter import slots
    from callfilter.sending import batch_log
    from callfilter.triggers import SLOT_FREE, VendorSlotTrigger
    from tests.batches import plan, send

    sim = start_simulator("--call-seconds", "0", "--rate-limit", "0", "--stuck-tasks", ".*")
    hook = VendorHook()
    holders = plan(db, storage, "H", ["13799999991", "13799999992"], batch_size=1)
    with dbm.connect() as conn:
        for batch in holders:
            assert slots.reserve(conn, batch_log(conn, batch["batch_id"])["id"], 2)
            send(conn, hook, storage, batch["batch_id"])
        held = [batch_log(conn, b["batch_id"]) for b in holders]
        waiting = []  # (filter task, log id), in the order they joined the queue
        for task in range(10):
            telnos = [f"137{task:02d}00000{i}" for i in range(5)]
            for batch in plan(db, storage, f"W{task}", telnos, 10 + task * 5, f"run-w{task}", batch_size=1):
                log_id = batch_log(conn, batch["batch_id"])["id"]
                assert not slots.reserve(conn, log_id, 2)
                waiting.append((task, log_id))
    poll = 0.5
    before = sim.stats()["requests_by_kind"].get("status", 0)
    connects, aconnect = [], dbm.aconnect  # the database connections the triggers open, counted
    monkeypatch.setattr(dbm, "aconnect", lambda *a: connects.append(a) or aconnect(*a))

    async def watch() -> tuple[int, int, int, list[dict | None]]:
        triggers = [VendorSlotTrigger(log_id, 2, poll, 3600) for _, log_id in waiting]
        runs = [asyncio.create_task(anext(t.run())) for t in triggers]
        await asyncio.sleep(4 * poll)
        early = sum(r.done() for r in runs)
        statuses = sim.stats()["requests_by_kind"]["status"] - before
        reads = len(connects)
        hook.cancel_task(held[0]["task_id"])  # one held vendor task ends
        done, pending = await asyncio.wait(runs, timeout=6 * poll)
        for run in pending:
            run.cancel()
        return early, statuses, reads, [r.result().payload if r in done else None for r in runs]

    early, statuses, reads, events = asyncio.run(watch())
    # 4 poll intervals of 50 waiters: the vendor was asked about each held task about once an interval (not
    # 50 x 2 x 4 = 400 times), the database read about once an interval (not 200 times), and nobody got a
    # slot while both vendor tasks dialed.
    assert early == 0 and 2 <= statuses <= 2 * 6 and 1 <= reads <= 6
    # When a held vendor task ends, every task's first waiting send sees its slot free (no query is needed
    # to notice, as under dag.test()); the sends behind them wait on.
    first_of_each_task = {task: log_id for task, log_id in reversed(waiting)}
    fired = {log_id: event for (_, log_id), event in zip(waiting, events, strict=True) if event}
    assert set(fired) == set(first_of_each_task.values())
    ended = [[held[0]["id"], held[0]["task_id"]]]
    assert all(e == {"status": SLOT_FREE, "held": 2, "ended": ended} for e in fired.values())
