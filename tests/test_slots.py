"""The vendor's cap on unfinished tasks, counted in the business database and waited for in the triggerer."""

from __future__ import annotations

import asyncio
import time

from callfilter import db as dbm
from callfilter import slots
from callfilter.sending import batch_log
from tests.batches import plan


def test_the_vendor_cap_is_one_count_across_batches_and_a_freed_slot_wakes_the_longest_waiter(db, storage):
    from callfilter.triggers import SLOT_FREE, VendorSlotTrigger

    telnos = ["13500000001", "13500000002", "13500000003", "13500000004"]
    batches = plan(db, storage, "F1", telnos, batch_size=1)
    with dbm.connect() as conn:
        logs = [batch_log(conn, b["batch_id"])["id"] for b in batches]
        assert slots.reserve(conn, logs[0], 2) and slots.reserve(conn, logs[1], 2)
        assert not slots.reserve(conn, logs[2], 2) and not slots.reserve(conn, logs[3], 2)
        assert slots.reserve(conn, logs[0], 2)  # a retry keeps its slot
        slots.release(conn, logs[0])

    def fires(log_id: int) -> bool:
        trigger = VendorSlotTrigger(log_id=log_id, cap=2, poll_interval=0.1, vendor_timeout=60)

        async def wait():
            async for event in trigger.run():
                return event.payload

        async def within_a_second():
            try:
                return await asyncio.wait_for(wait(), 1.0)
            except TimeoutError:
                return None

        event = asyncio.run(within_a_second())
        return event is not None and event["status"] == SLOT_FREE

    assert fires(logs[2]) and not fires(logs[3])  # one slot free: the batch that waited first goes
    with dbm.connect() as conn:
        assert slots.reserve(conn, logs[2], 2) and not slots.reserve(conn, logs[3], 2)
    assert db.value("select count(*) from call_filter_send_batch_log where holds_slot") == 2
    waiting = db.rows("select id from call_filter_send_batch_log where slot_wait_since is not null")
    assert [r["id"] for r in waiting] == [logs[3]]


def test_a_free_slot_kept_for_a_batch_ahead_goes_to_a_later_one_after_the_grace(db, storage, monkeypatch):
    # Found by bench/scheduler.py: sends ahead went up for retry after their trigger fired (an executor event
    # late under load), and the sends behind them took every place max_active_tis_per_dagrun gives, then
    # waited for them forever.
    from callfilter import triggers

    monkeypatch.setattr(triggers, "AHEAD_GRACE", 0.5)
    batches = plan(db, storage, "F2", ["13500000001", "13500000002", "13500000003"], batch_size=1)
    with dbm.connect() as conn:
        logs = [batch_log(conn, b["batch_id"])["id"] for b in batches]
        assert slots.reserve(conn, logs[0], 1)
        assert not slots.reserve(conn, logs[1], 1) and not slots.reserve(conn, logs[2], 1)
        slots.release(
            conn, logs[0]
        )  # a slot is free; logs[1] waited longer than logs[2] but is not waiting now

    def waited(within: float) -> float | None:
        trigger = triggers.VendorSlotTrigger(log_id=logs[2], cap=1, poll_interval=0.1, vendor_timeout=60)

        async def wait():
            async for event in trigger.run():
                assert event.payload["status"] == triggers.SLOT_FREE
                return

        async def bounded():
            began = time.monotonic()
            try:
                await asyncio.wait_for(wait(), within)
            except TimeoutError:
                return None
            return time.monotonic() - began

        return asyncio.run(bounded())

    seconds = waited(5.0)
    assert seconds is not None and 0.5 <= seconds < 2.0
    with dbm.connect() as conn:
        assert slots.reserve(conn, logs[2], 1)  # the resumed send takes it; logs[1] waits for the next one


def test_a_send_that_died_holding_a_slot_does_not_block_the_waiting_ones(db, storage):
    from callfilter.triggers import SLOT_FREE, UNSENT_SLOT_GRACE, VendorSlotTrigger

    batches = plan(db, storage, "F3", ["13500000001", "13500000002", "13500000003"], batch_size=1)
    with dbm.connect() as conn:
        logs = [batch_log(conn, b["batch_id"])["id"] for b in batches]
        assert slots.reserve(conn, logs[0], 1) and not slots.reserve(conn, logs[1], 1)
        # A send that failed before its vendor task existed gives its slot back before its retry...
        slots.release_unsent(conn, logs[0])
        assert slots.reserve(conn, logs[1], 1)
        # ...but one whose vendor task exists keeps it (the vendor task is unfinished).
        db.conn.execute(
            "update call_filter_send_batch_log set task_id = 'T-dialing' where id = %s", (logs[1],)
        )
        slots.release_unsent(conn, logs[1])
        assert db.value("select holds_slot from call_filter_send_batch_log where id = %s", (logs[1],))
        slots.release(conn, logs[1])
        assert slots.reserve(conn, logs[0], 1) and not slots.reserve(conn, logs[2], 1)

    def first_event(within: float) -> dict | None:
        trigger = VendorSlotTrigger(log_id=logs[2], cap=1, poll_interval=0.1, vendor_timeout=60)

        async def wait():
            async for event in trigger.run():
                return event.payload

        async def bounded():
            try:
                return await asyncio.wait_for(wait(), within)
            except TimeoutError:
                return None

        return asyncio.run(bounded())

    # The slot of a send being created right now is held; one held with no vendor task past the grace
    # belongs to a send that died (killed with its worker): it counts as free, and the event names it.
    assert first_event(1.0) is None
    db.conn.execute(
        "update call_filter_send_batch_log set slot_since = now() - make_interval(secs => %s) where id = %s",
        (UNSENT_SLOT_GRACE + 1, logs[0]),
    )
    event = first_event(5.0)
    assert event == {"status": SLOT_FREE, "held": 1, "ended": [[logs[0], None]]}
    with dbm.connect() as conn:
        assert slots.release_ended(conn, [(i, t) for i, t in event["ended"]]) == 1
        # The dead send's retry takes a slot again: the same event, read a moment before, frees nothing now.
        assert slots.reserve(conn, logs[0], 1)
        assert slots.release_ended(conn, [(i, t) for i, t in event["ended"]]) == 0
        slots.release_unsent(conn, logs[0])
        assert slots.reserve(conn, logs[2], 1)
