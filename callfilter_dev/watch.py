"""Watch a call_filter run from the business database while it runs: progress bars (rich) on a terminal,
a line per change otherwise, and a stuck run told apart from a slow one.

Used by the commands that wait on a run (scripts/demo.py, bench/). It reads only the task row and the view
call_filter_batch_progress (callfilter.progress), so it works beside any Airflow: `dags test`, a scheduler.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from callfilter import codes
from callfilter import progress as task_progress
from callfilter.progress import TaskProgress

STUCK_AFTER_ENV = "CALLFILTER_STUCK_AFTER"
DEFAULT_STUCK_AFTER = 900.0  # seconds with nothing moved; longer than any healthy pause of the demo


def stuck_after_default() -> float:
    return float(os.environ.get(STUCK_AFTER_ENV) or DEFAULT_STUCK_AFTER)


class RunStuck(RuntimeError):
    """Nothing moved for `stuck_after` seconds; the message says what the run was waiting on."""

    def __init__(self, message: str, filter_task_id: int | None) -> None:
        super().__init__(message)
        self.filter_task_id = filter_task_id


def clock(seconds: float | None) -> str:
    return "?" if seconds is None else str(timedelta(seconds=round(seconds)))


class Estimate:
    """Time left, from the pace of numbers screened since the first one was (rather than since the run
    began: register and plan do not scale with dialing)."""

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None

    def left(self, now: float, p: TaskProgress) -> float | None:
        if p.screened <= 0 or p.numbers <= 0:
            return None
        if self.first is None:
            self.first = (now, p.screened)
            return None
        since, at = self.first
        done = p.screened - at
        if done <= 0 or now <= since:
            return None
        return (p.numbers - p.screened) * (now - since) / done


ROWS = (("planned", "batches planned"), ("sent", "batches sent"), ("queried", "batches queried"),
        ("applied", "batches applied"), ("screened", "numbers screened"))  # fmt: skip


class RunWatcher:
    """Follow the filter task a run registers for `batchid` (the first one above `after_task_id`) until
    `finished()` says the run is over; raise RunStuck when nothing moved for `stuck_after` seconds."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        batchid: str,
        *,
        after_task_id: int = 0,
        stuck_after: float | None = None,
        interval: float = 1.0,
        line_every: float = 5.0,
        console: Console | None = None,
    ) -> None:
        self.connect = connect
        self.batchid = batchid
        self.after_task_id = after_task_id
        self.stuck_after = stuck_after if stuck_after is not None else stuck_after_default()
        self.interval = interval
        self.line_every = line_every
        self.console = console or Console(file=sys.stdout)
        self.filter_task_id: int | None = None
        self.estimate = Estimate()
        self.started = time.monotonic()

    # ---- reading ----

    def read(self, conn: psycopg.Connection[Any]) -> TaskProgress | None:
        if self.filter_task_id is None:
            self.filter_task_id = task_progress.find_task(conn, self.batchid, self.after_task_id)
            if self.filter_task_id is None:
                return None
        return task_progress.read_progress(conn, self.filter_task_id)

    def waiting_on(self, conn: psycopg.Connection[Any]) -> list[str]:
        if self.filter_task_id is None:
            return [f"register: no filter task for batchid {self.batchid} yet (is Airflow running the DAG?)"]
        return task_progress.waiting_on(conn, self.filter_task_id)

    # ---- the loop ----

    def watch(self, finished: Callable[[], bool]) -> TaskProgress | None:
        """Show progress until `finished()`; returns the last counts read."""
        view = _Bars(self.console) if self.console.is_terminal else _Lines(self.console, self.line_every)
        last: TaskProgress | None = None
        seen: tuple[Any, ...] | None = None
        moved = time.monotonic()
        noted = False
        with self.connect() as conn, view:
            while True:
                done = finished()
                current = self.read(conn)
                now = time.monotonic()
                if current is None and last is None and not noted:
                    view.note(f"waiting for the run to register a filter task for batchid {self.batchid} ...")
                    noted = True
                if current is not None:
                    last = current
                    view.show(current, now - self.started, self.estimate.left(now, current), final=done)
                key = current.fingerprint() if current else None
                if key != seen:
                    seen, moved = key, now
                if done:
                    return last
                if now - moved >= self.stuck_after:
                    lines = "\n".join(f"  - {line}" for line in self.waiting_on(conn))
                    raise RunStuck(
                        f"stuck: nothing moved for {clock(now - moved)} (CALLFILTER_STUCK_AFTER / --stuck-after "
                        f"{self.stuck_after:.0f} s); waiting on:\n{lines}",
                        self.filter_task_id,
                    )
                time.sleep(self.interval)


STATES = {
    codes.TaskStatus.REGISTERED: "registered",
    codes.TaskStatus.RUNNING: "running",
    codes.TaskStatus.FINISHED: "finished",
    codes.TaskStatus.FAILED: "failed",
    codes.TaskStatus.FINISHED_WITH_ERRORS: "finished with errors",
}


def summary_line(p: TaskProgress, elapsed: float, left: float | None) -> str:
    total = p.batches
    failed = f" ({p.failed} failed)" if p.failed else ""
    return (
        f"filter task {p.filter_task_id}: batches planned {p.planned}/{total}, sent {p.sent}/{total}, "
        f"queried {p.queried}/{total}{failed}, applied {p.applied}/{total}; "
        f"numbers screened {p.screened}/{p.numbers}; elapsed {clock(elapsed)}, "
        + (STATES.get(p.status, str(p.status)) if p.ended else f"left ~{clock(left)}")
    )


class _Lines:
    """Not a terminal (a log, a pipe): one line when the counts changed, at most every `every` seconds."""

    def __init__(self, console: Console, every: float) -> None:
        self.console, self.every = console, every
        self.printed: tuple[Any, ...] | None = None
        self.at = 0.0

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def note(self, text: str) -> None:
        self.console.print("    " + text, soft_wrap=True, highlight=False)

    def show(self, p: TaskProgress, elapsed: float, left: float | None, final: bool) -> None:
        key = p.fingerprint()[:-1]
        now = time.monotonic()
        if key == self.printed or (not final and now - self.at < self.every):
            return
        self.printed, self.at = key, now
        self.console.print("    " + summary_line(p, elapsed, left), soft_wrap=True, highlight=False)


class _Bars:
    """A terminal: one rich progress bar per count, redrawn in place."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("    {task.description:<17}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
            refresh_per_second=4,
        )
        self.rows = {name: self.progress.add_task(label, total=None, note="") for name, label in ROWS}
        self.header: str | None = None

    def __enter__(self) -> _Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def note(self, text: str) -> None:
        self.progress.console.print("    " + text, soft_wrap=True, highlight=False)

    def show(self, p: TaskProgress, elapsed: float, left: float | None, final: bool) -> None:
        if self.header is None:
            self.header = f"filter task {p.filter_task_id} (batchid {p.batchid})"
            self.note(self.header)
        state = STATES.get(p.status, str(p.status)) if p.ended else f"left ~{clock(left)}"
        notes = {
            "sent": ", ".join(
                part
                for part in (
                    f"{p.dialing} dialing" if p.dialing else "",
                    f"{p.waiting_for_slot} waiting for a vendor slot" if p.waiting_for_slot else "",
                )
                if part
            ),
            "queried": f"{p.failed} failed" if p.failed else "",
            "screened": f"elapsed {clock(elapsed)}, {state}",
        }
        for name, task_id in self.rows.items():
            total = p.numbers if name == "screened" else p.batches
            self.progress.update(
                task_id, completed=getattr(p, name), total=total or None, note=notes.get(name, "")
            )
        if final:
            self.progress.refresh()
