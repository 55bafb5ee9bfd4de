"""callfilter_dev.watch: a run's progress from the business database, and a stuck run told apart, on real
PostgreSQL with batches sent to and stored from the simulator over HTTP."""

from __future__ import annotations

import io
import re

import pytest
from airflow.sdk.exceptions import TaskDeferred
from rich.console import Console

from callfilter import db as dbm
from callfilter.operators import QueryBatchOperator, SendBatchOperator
from callfilter.results import store_results
from callfilter.vendor import VendorHook
from callfilter_dev.watch import RunStuck, RunWatcher
from tests.batches import context, plan, send

NUMBERS = [f"1350000{i:04d}" for i in range(6)]


def step_by_step(db, storage, batches: list[dict]):
    """`finished()` for the watcher: each call moves the task one step (send a batch, store it)."""
    hook = VendorHook()
    steps = []
    for batch in batches:
        steps.append(lambda b=batch: send(conn, hook, storage, b["batch_id"]))
        steps.append(lambda b=batch: store_results(conn, hook, storage, logs[b["batch_id"]], "FINISHED"))
    conn = dbm.connect()
    logs: dict[int, int] = {}

    def finished() -> bool:
        if not steps:
            conn.close()
            return True
        result = steps.pop(0)()
        if "task_id" in result:
            logs[result["filter_send_batch_id"]] = result["id"]
        return False

    return finished


def test_lines_show_the_counts_moving_when_the_output_is_not_a_terminal(db, storage, simulator):
    batches = plan(db, storage, "W1", NUMBERS, batch_size=3)
    out = io.StringIO()
    watcher = RunWatcher(dbm.connect, "W1", interval=0.05, line_every=0, console=Console(file=out, width=300))
    last = watcher.watch(step_by_step(db, storage, batches))
    lines = [line.strip() for line in out.getvalue().splitlines()]
    sent = [int(m.group(1)) for line in lines if (m := re.search(r"sent (\d)/2", line))]
    screened = [int(m.group(1)) for line in lines if (m := re.search(r"numbers screened (\d)/6", line))]
    assert sent == [1, 1, 2, 2] and screened == [0, 3, 3, 6]  # one line per step of the run
    assert lines[-1].startswith("filter task 1: batches planned 2/2, sent 2/2, queried 2/2, applied 2/2;")
    assert (last.applied, last.screened, last.failed) == (2, 6, 0)


def test_bars_on_a_terminal_end_at_the_run_s_counts(db, storage, simulator):
    batches = plan(db, storage, "W2", NUMBERS, batch_size=3)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=140)
    RunWatcher(dbm.connect, "W2", interval=0.3, console=console).watch(step_by_step(db, storage, batches))
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # colours and cursor moves
    assert "filter task 1 (batchid W2)" in text
    assert re.search(r"batches sent\s+\S*━+\S*\s+1/2", text)  # seen moving, not only at the end
    final = text.rsplit("batches planned", 1)[1]
    assert re.search(r"batches sent\s+\S*━+\S*\s+2/2", final) and re.search(
        r"numbers screened\s+\S*━+\S*\s+6/6", final
    )


def test_a_run_where_nothing_moves_is_reported_stuck_with_what_it_waits_on(db, storage, start_simulator):
    start_simulator("--call-seconds", "0", "--rate-limit", "0", "--stuck-tasks=-0001$")
    batches = plan(db, storage, "W3", NUMBERS, batch_size=3)
    ctx = context()
    log_id = SendBatchOperator(task_id="send", batch=batches[0]).execute(ctx)
    with pytest.raises(TaskDeferred):  # the query waits for a vendor task that never ends
        QueryBatchOperator(task_id="query", batch=batches[0], batch_log_id=log_id).execute(ctx)
    watcher = RunWatcher(
        dbm.connect, "W3", stuck_after=1.5, interval=0.2, console=Console(file=io.StringIO())
    )
    with pytest.raises(RunStuck) as stuck:
        watcher.watch(lambda: False)
    message = str(stuck.value)
    assert message.startswith("stuck: nothing moved for 0:00:02")
    assert re.search(r"batch 1: vendor task T\d+ dialing, created .*, status polled since ", message)
    assert "batch 2: not sent yet" in message and stuck.value.filter_task_id == 1
    # Nothing was changed by the watcher: the batch still waits as it did, so a clear continues it.
    row = db.rows("select * from call_filter_batch_progress where batch_order = 1")[0]
    assert (row["query_fromflag"], row["query_recvflag"], row["status_name"]) == (1, 0, "sent")


def test_a_run_that_never_registers_is_reported_stuck(db):
    watcher = RunWatcher(
        dbm.connect, "NEVER", stuck_after=0.5, interval=0.1, console=Console(file=io.StringIO())
    )
    with pytest.raises(RunStuck, match="register: no filter task for batchid NEVER yet"):
        watcher.watch(lambda: False)
