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
