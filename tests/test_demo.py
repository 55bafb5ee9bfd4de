"""scripts/demo.py as a person runs it (`make demo`), its output piped: progress lines with the counts
moving while call_filter runs through real Airflow, then the summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from urllib.parse import quote

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.dag


def database_url(database) -> str:
    """The test suite's PostgreSQL server as CALLFILTER_DATABASE_URL (the demo then makes its database there)."""
    p = database.params
    auth = quote(p["user"] or "") + (f":{quote(p['password'])}" if p["password"] else "")
    if p["host"] and p["host"].startswith("/"):  # a Unix socket directory
        return f"postgresql://{auth}@/{p['dbname']}?host={quote(p['host'])}" + (
            f"&port={p['port']}" if p["port"] else ""
        )
    return f"postgresql://{auth}@{p['host']}:{p['port'] or 5432}/{p['dbname']}"


def test_the_demo_shows_its_progress_moving_then_the_summary(database, tmp_path):
    env = {**os.environ, "CALLFILTER_DATABASE_URL": database_url(database)}
    args = ["--numbers", "1200", "--batch-size", "100", "--progress-every", "0.5", "--workdir", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), *args],
        env=env, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    output = result.stdout
    assert result.returncode == 0, output[-3000:] + result.stderr[-3000:]
    progress = re.findall(
        r"filter task \d+: batches planned (\d+)/(\d+), sent (\d+)/\d+, queried (\d+)/\d+, applied (\d+)/\d+; "
        r"numbers screened (\d+)/(\d+); elapsed [\d:]+, (.+)",
        output,
    )
    assert len(progress) >= 3, output
    planned, batches = int(progress[-1][0]), int(progress[-1][1])
    assert planned == batches >= 11  # 1200 numbers, a few malformed or repeated, in batches of 100
    sent = [int(p[2]) for p in progress]
    applied = [int(p[4]) for p in progress]
    screened = [int(p[5]) for p in progress]
    assert sent == sorted(sent) and applied == sorted(applied) and screened == sorted(screened)
    assert len(set(applied)) >= 3  # the counts moved while it ran, not only at the end
    assert applied[-1] == batches and screened[-1] == int(progress[-1][6])
    assert progress[-1][7] == "finished" and progress[0][7].startswith("left ~")
    assert (
        output.index("4/5 airflow dags test") < output.index("batches planned") < output.index("5/5 results")
    )
    assert re.search(r"filter task \d+: 1200 numbers screened in \d+ vendor tasks, run took", output)
    assert re.search(r"valid \d+, invalid \d+, unknown \d+", output)
    assert (tmp_path / "airflow-run.log").exists()
