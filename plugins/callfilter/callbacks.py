"""The DAG's callbacks. The DAG file imports this module at every parse: standard library only at the top,
the database inside the callback."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def mark_failed(context: Mapping[str, Any]) -> None:
    """on_failure_callback: record the failure on the filter task so the business system sees it.

    A failed batch fails only itself: finish names it on the task ("finished with errors")."""
    from callfilter import db
    from callfilter.reports import mark_task_failed

    ti = context["ti"]
    if ti.task_id.startswith("batch."):
        return
    filter_task = ti.xcom_pull(task_ids="register")
    if not filter_task:
        return
    label = ti.task_id + (f"[{ti.map_index}]" if getattr(ti, "map_index", -1) >= 0 else "")
    message = f"{label} failed: {context.get('exception')}"
    try:
        with db.connect() as conn:
            mark_task_failed(conn, filter_task["filter_task_id"], message)
    except Exception as exc:  # a callback must not hide the task's own failure
        log.warning("could not mark filter task %s failed: %s", filter_task["filter_task_id"], exc)
