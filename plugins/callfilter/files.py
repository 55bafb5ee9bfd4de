"""The one storage seam for files people and steps read: JSON requests and results, xlsx reports.

Files live under `CALLFILTER_FILES_ROOT`, read as an Airflow `ObjectStoragePath`: a local directory every
worker shares, or an object store URL (`s3://bucket/prefix`, credentials from the Airflow connection named
in the URL, `s3://aws_default@bucket/prefix`, or by `CALLFILTER_FILES_CONN_ID`). A scheme no installed
provider serves falls back to fsspec's own filesystem for it (`memory://`, ...).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from callfilter.contract import json_bytes
from callfilter.xlsx import Sheet, write_workbook

FILES_ROOT_ENV = "CALLFILTER_FILES_ROOT"
FILES_CONN_ID_ENV = "CALLFILTER_FILES_CONN_ID"


class FilesRootNotSetError(RuntimeError):
    """No usable `CALLFILTER_FILES_ROOT`: unset (there is no place every worker can read a batch's files
    from), or carrying a password."""


def files_root(url: str | None = None, conn_id: str | None = None) -> Any:
    """The root `ObjectStoragePath` of the files store."""
    import fsspec
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach, has_fs

    url = url or os.environ.get(FILES_ROOT_ENV)
    if not url:
        raise FilesRootNotSetError(
            f"{FILES_ROOT_ENV} is not set: set it to a directory every Airflow worker shares, or to an "
            "object store URL such as s3://aws_default@bucket/callfilter"
        )
    if urlsplit(url).password is not None:  # the URL is logged and returned: no secret may ride in it
        raise FilesRootNotSetError(
            f"{FILES_ROOT_ENV} carries a password: keep credentials in an Airflow connection and name it, "
            f"as in s3://aws_default@bucket/callfilter or with {FILES_CONN_ID_ENV}"
        )
    root = ObjectStoragePath(url.rstrip("/"), conn_id=conn_id or os.environ.get(FILES_CONN_ID_ENV) or None)
    protocol = root.protocol or "file"
    if not has_fs(protocol):
        attach(protocol, root.conn_id, fs=fsspec.filesystem(protocol))
    return root


class Storage:
    """Reads and writes files by path relative to one root."""

    def __init__(self, root: str | None = None, conn_id: str | None = None) -> None:
        self.root = files_root(root, conn_id)

    def url(self, path: str) -> str:
        """Where a file is, as a person would open it."""
        return str(self.root / path)

    def exists(self, path: str) -> bool:
        return (self.root / path).exists()

    def write_bytes(self, path: str, data: bytes) -> str:
        """Write a whole file (through a temporary name where the store allows, so readers never see half)."""
        if self._local:
            return self._write_local(path, lambda out: out.write(data))
        return self.write_file(path, io.BytesIO(data))

    def write_file(self, path: str, source: BinaryIO) -> str:
        """Write a whole file from an open binary file, copied in chunks, as `write_bytes` writes one."""
        if self._local:
            return self._write_local(path, lambda out: shutil.copyfileobj(source, out, _CHUNK))
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:  # object stores make an upload visible only once complete
            shutil.copyfileobj(source, out, _CHUNK)
        return self.url(path)

    @property
    def _local(self) -> bool:
        return self.root.protocol in ("", "file", "local")

    def _write_local(self, path: str, write: Callable[[BinaryIO], Any]) -> str:
        """A local file written under a temporary name, then renamed over the target: readers never see half.
        Returns its URL."""
        target = self.root / path
        local = target.path
        part = f"{local}.{uuid.uuid4().hex}.part"  # one per writer: two stores never share it
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        except FileNotFoundError:  # its directory is new
            # Phone numbers: readable by the owner and its group only, never by every local user.
            os.makedirs(os.path.dirname(local), mode=0o750, exist_ok=True)
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "wb") as out:
            write(out)
        os.replace(part, local)
        return str(target)

    def read_bytes(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def write_json(self, path: str, payload: Any) -> str:
        """Compact JSON (`contract.json_bytes`, as a request body is sent); `python -m json.tool FILE` shows
        one indented."""
        return self.write_bytes(path, json_bytes(payload))

    def read_json(self, path: str) -> Any:
        return json.loads(self.read_bytes(path))

    def write_xlsx(self, path: str, sheets: Sequence[Sheet]) -> str:
        """An xlsx workbook (`xlsx.write_workbook`: one sheet per (title, header, rows)), made in a local
        temporary file and then copied: a summary of a million rows is never held in memory whole."""
        with tempfile.TemporaryFile() as made:
            write_workbook(made, sheets)
            made.seek(0)
            return self.write_file(path, made)


_CHUNK = 1 << 20


# Characters unsafe in a file name or an object store URL: separators, control characters, wildcards, and
# the characters a URL reads as query, fragment or escape.
_UNSAFE_IN_PATH = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|#%]+')


def safe_name(text: str) -> str:
    """A user-given name as a file name: itself (张三, 李四-ops), with only the characters unsafe in a path
    replaced by "_" and no leading or trailing dots or spaces."""
    cleaned = _UNSAFE_IN_PATH.sub("_", unicodedata.normalize("NFC", text)).strip(" ._")
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
