"""The one storage seam for files people and steps read: JSON requests and results, xlsx reports.

Files live under `CALLFILTER_FILES_ROOT`, a local path or any fsspec URL (s3://bucket/prefix, ...).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec

FILES_ROOT_ENV = "CALLFILTER_FILES_ROOT"
DEFAULT_FILES_ROOT = str(Path.home() / "callfilter-files")


class Storage:
    """Reads and writes files by path relative to one root."""

    def __init__(self, root: str | None = None) -> None:
        self.root = (root or os.environ.get(FILES_ROOT_ENV) or DEFAULT_FILES_ROOT).rstrip("/")
        self.fs, self.base = fsspec.core.url_to_fs(self.root)

    def _full(self, path: str) -> str:
        return f"{self.base}/{path}"

    def url(self, path: str) -> str:
        """Where a file is, as a person would open it."""
        return f"{self.root}/{path}"

    def exists(self, path: str) -> bool:
        return self.fs.exists(self._full(path))

    def write_bytes(self, path: str, data: bytes) -> str:
        """Write a whole file (through a temporary name where the store allows, so readers never see half)."""
        full = self._full(path)
        parent = full.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        if "file" in protocols:
            tmp = f"{full}.part"
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, full)
        else:
            self.fs.pipe_file(full, data)
        return self.url(path)

    def read_bytes(self, path: str) -> bytes:
        return self.fs.cat_file(self._full(path))

    def write_json(self, path: str, payload: Any) -> str:
        return self.write_bytes(path, json.dumps(payload, ensure_ascii=False, indent=1).encode())

    def read_json(self, path: str) -> Any:
        return json.loads(self.read_bytes(path))

    def write_xlsx(
        self, path: str, sheets: Sequence[tuple[str, Sequence[str], Iterable[Sequence[Any]]]]
    ) -> str:
        return self.write_bytes(path, xlsx_bytes(sheets))


def xlsx_bytes(sheets: Sequence[tuple[str, Sequence[str], Iterable[Sequence[Any]]]]) -> bytes:
    """An xlsx workbook with one sheet per (title, header, rows); rows stream (write-only mode)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    for title, header, rows in sheets:
        sheet = workbook.create_sheet(title=title[:31])
        sheet.append(list(header))
        for row in rows:
            sheet.append([_cell(v) for v in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    # xlsx has no time zones: aware datetimes are written as UTC wall time.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def safe_name(text: str) -> str:
    """A file-name-safe form of a user-given name."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")
    return cleaned[:64] or "user"


# Where each file of a filter task goes.
def task_dir(filter_task_id: int) -> str:
    return f"task-{filter_task_id}"


def _attempt_name(batch_order: int, attempt: int) -> str:
    # A batch's first vendor task is batch-0003; a later one (calling window closed, re-dial) batch-0003-a2.
    return f"batch-{batch_order:04d}" + (f"-a{attempt}" if attempt > 1 else "")


def request_path(filter_task_id: int, batch_order: int, attempt: int = 1) -> str:
    return f"{task_dir(filter_task_id)}/requests/{_attempt_name(batch_order, attempt)}.json"


def batch_xlsx_path(filter_task_id: int, batch_order: int) -> str:
    return f"{task_dir(filter_task_id)}/batches/batch-{batch_order:04d}.xlsx"


def raw_results_path(filter_task_id: int, batch_order: int, attempt: int = 1) -> str:
    return f"{task_dir(filter_task_id)}/results/{_attempt_name(batch_order, attempt)}.json"


def results_xlsx_path(filter_task_id: int, batch_order: int, attempt: int = 1) -> str:
    return f"{task_dir(filter_task_id)}/results/{_attempt_name(batch_order, attempt)}.xlsx"


def summary_path(filter_task_id: int, creator: str) -> str:
    return f"{task_dir(filter_task_id)}/{safe_name(creator)}-task-{filter_task_id}-summary.xlsx"
