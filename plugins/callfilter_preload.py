"""Preload: what every send and query task process imports, imported once per component.

The scheduler, triggerer, dag-processor and api-server load the plugins of plugins/ when they start (the
scheduler before its LocalExecutor forks its workers); a Celery worker does only with
`[core] lazy_load_plugins = False`. A task process is forked from a worker and inherits what the worker's
parent imported: the libraries (psycopg, requests, aiohttp with the HTTP provider's hooks, the Postgres
provider's hook, the task decorators its DAG file uses: about 0.8 s of imports) and callfilter's own modules
(20-25 ms more) that each task process would otherwise import again. It also fills two caches each task
process would fill for itself (`warm`): Jinja's lexer and what the JSON-schema checks of the run params
load. With workers from a forkserver (`[scheduler] mp_start_method`), name this module in
`[core] mp_forkserver_preload`.

A task process must run callfilter's code as it is on disk now, not as it was when the component started:
every process forked after one of callfilter's preloaded files changed (or was replaced or deleted) forgets
all of callfilter's modules as it starts, and imports them from disk again (`forget_changed`, run at every
fork). callfilter.ui (the screening page, FastAPI) is never preloaded. `CALLFILTER_PRELOAD_IMPORTS=0` turns
the preload off.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import sys

PRELOAD_ENV = "CALLFILTER_PRELOAD_IMPORTS"
PACKAGE = "callfilter"

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
    # What the files store's first ObjectStoragePath of a local directory imports: ~3 ms a process.
    "upath.implementations.local",
)
NOT_PRELOADED = ("callfilter.ui",)  # the screening page: FastAPI, for the api-server alone, on first request

# The file of each preloaded callfilter module as it was when imported: (device, inode, size, mtime, ctime).
_stamps: dict[str, tuple[int, ...]] = {}


def _stamp(path: str | None) -> tuple[int, ...] | None:
    if not path:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def _own_modules() -> list[str]:
    return [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]


def forget_changed() -> bool:
    """Forget every callfilter module (so the next import reads them from disk) when a preloaded one's file
    changed, was replaced or is gone; True when forgotten. Runs in every forked process as it starts: it
    only stats the files (reading sys.modules' thousands of entries there would copy their memory pages)."""
    if all(_stamp(path) == stamp for path, stamp in _stamps.items()):
        return False
    for name in _own_modules():
        del sys.modules[name]
    _stamps.clear()
    return True


def warm() -> None:
    """Fill the process-wide caches that every task process would otherwise fill for itself (~3 ms of each):
    Jinja's lexer (Airflow renders a task's templates and its map index through a new Jinja environment, whose
    lexer is cached per process by its delimiters), and what checking the run params against their JSON
    schemas loads and compiles (the schema drafts' meta-schemas, the params' patterns): Airflow checks them
    in every task process."""
    from jinja2.sandbox import SandboxedEnvironment

    from callfilter.params import validate_params

    SandboxedEnvironment().from_string("{{ batch_label }}").render(batch_label="")
    validate_params({"batchid": "preload"})


def preload() -> None:
    """Import MODULES and callfilter's modules (but NOT_PRELOADED), then `warm`, unless
    CALLFILTER_PRELOAD_IMPORTS is 0."""
    if os.environ.get(PRELOAD_ENV, "1").strip() == "0":
        return
    for name in MODULES:
        importlib.import_module(name)
    # callfilter already imported: by a test or a tool (not ours to vouch for), or by this preload in the
    # component the process was forked from (Airflow loads the plugins again in every task process, where
    # warming again would cost ~3 ms).
    if _own_modules():
        return
    package = importlib.import_module(PACKAGE)
    for found in pkgutil.iter_modules(package.__path__, PACKAGE + "."):
        if found.name not in NOT_PRELOADED:
            importlib.import_module(found.name)
    for name in _own_modules():
        path = sys.modules[name].__file__
        stamp = _stamp(path)
        if stamp is not None:
            _stamps[path] = stamp
    os.register_at_fork(after_in_child=forget_changed)
    try:
        warm()
    except Exception:  # a speed-up only: a component starts without it
        logging.getLogger(__name__).warning("callfilter_preload: caches not warmed", exc_info=True)


preload()
