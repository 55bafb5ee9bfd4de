"""Helpers of the stack tests at the vendor's pace (test_real_pace.py, test_celery.py): the simulator on one
port for a whole module, numbers to load, and reading rows and task instances."""

from __future__ import annotations

import sys
from typing import Any

from callfilter_dev import devenv
from tests.conftest import APP_ID, APP_SECRET, RUN_DIR
from tests.stack import AirflowStack


class Vendor:
    """The simulator on one port for a whole module, at the pace `options` give (--call-seconds, --lines,
    --max-unfinished, --seed ...); each start() starts it anew with more options (faults)."""

    def __init__(self, *options: str) -> None:
        self.options = options
        self.port = devenv.free_port()
        self.process: Any = None

    def start(self, *options: str) -> None:
        self.stop()
        log_path = RUN_DIR / f"simulator-realpace-{self.port}.log"
        self.process = devenv.start_simulator(
            self.port, APP_ID, APP_SECRET, *self.options, *options, log_path=log_path
        )

    def stats(self) -> dict[str, Any]:
        import requests

        return requests.get(f"http://127.0.0.1:{self.port}/_sim/stats", timeout=10).json()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def preloaded_libraries() -> list[str]:
    """Files of compiled modules of psycopg (psycopg-binary) and aiohttp, which plugins/callfilter_preload.py
    imports: mapped into every process that imported them. (psycopg's, not the first "psycopg" of a memory
    map: Airflow's SQLAlchemy loads psycopg2's; aiohttp's too, as a Celery pool process may load psycopg.)"""
    import aiohttp._http_parser
    from psycopg import pq

    return [sys.modules[f"psycopg_{pq.__impl__}.pq"].__file__, aiohttp._http_parser.__file__]


def rows(conn, query: str, params: Any = None) -> list[dict[str, Any]]:
    return conn.execute(query, params).fetchall()


def value(conn, query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return next(iter(row.values())) if row else None


def numbers(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(count)]


def batch_tis(stack: AirflowStack, run_id: str, task: str) -> dict[int, dict[str, Any]]:
    return {
        ti["map_index"]: ti for ti in stack.task_instances("call_filter", run_id) if ti["task_id"] == task
    }
