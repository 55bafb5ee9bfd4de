"""Preload: the libraries every send and query task process imports, imported once per component.

The scheduler, triggerer, dag-processor and api-server load the plugins of plugins/ when they start (the
scheduler before its LocalExecutor forks its workers); a Celery worker does only with
`[core] lazy_load_plugins = False`. A task process is forked from a worker and inherits what the worker's
parent imported: about 0.8 s of imports (psycopg, requests, aiohttp with the HTTP provider's hooks, the
Postgres provider's hook, the task decorators its DAG file uses) that each task process would otherwise make
again. With workers from a forkserver (`[scheduler] mp_start_method`), name this module in
`[core] mp_forkserver_preload`.

Only libraries, never callfilter's own modules: a task process must import the DAG package's code as it is
on disk now, not as it was when the scheduler started. `CALLFILTER_PRELOAD_IMPORTS=0` turns the preload off.
"""

from __future__ import annotations

import importlib
import os

PRELOAD_ENV = "CALLFILTER_PRELOAD_IMPORTS"

MODULES = (
    "psycopg",
    "psycopg.rows",
    "psycopg.types.json",
    "requests",
    "tenacity",
    "aiohttp",
    "airflow.providers.http.hooks.http",
    "airflow.providers.postgres.hooks.postgres",  # with the common SQL provider's hooks: ~0.09 s a process
    "airflow.triggers.base",
    # What the DAG file's `from airflow.sdk import dag, task, task_group` loads (the standard provider's Python
    # operator among them): every task process parses its DAG file, ~0.04 s of imports.
    "airflow.sdk.definitions.decorators",
)


def preload() -> None:
    """Import MODULES unless CALLFILTER_PRELOAD_IMPORTS is 0."""
    if os.environ.get(PRELOAD_ENV, "1").strip() == "0":
        return
    for name in MODULES:
        importlib.import_module(name)


preload()
