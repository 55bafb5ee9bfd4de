"""Shared fixtures: a real call-center simulator over HTTP, a real PostgreSQL, an Airflow home."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / ".test-run"
RUN_DIR.mkdir(exist_ok=True)

# Airflow reads its settings at import: fix them before anything imports airflow.
os.environ.setdefault("AIRFLOW_HOME", str(RUN_DIR / "airflow"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")

APP_ID = "test-app"
APP_SECRET = "test-secret-d0n7-l0g-m3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Simulator:
    """A running `python -m callfilter.simulator` process."""

    def __init__(self, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = RUN_DIR / f"simulator-{self.port}.log"
        cmd = [
            sys.executable, "-m", "callfilter.simulator", "--port", str(self.port),
            "--app-id", APP_ID, "--app-secret", APP_SECRET, "--log-level", "warning", *options,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(cmd, env=env, stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"simulator exited: {self.log_path.read_text()}")
            try:
                requests.get(self.url + "/_sim/stats", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("simulator did not start in 30 s")

    def stats(self) -> dict:
        return requests.get(self.url + "/_sim/stats", timeout=5).json()

    def conn_uri(self) -> str:
        return json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": self.port, "schema": "http",
             "login": APP_ID, "password": APP_SECRET}
        )  # fmt: skip

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log_file.close()


@pytest.fixture
def start_simulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Simulator]]:
    """Start a simulator with the given options; its connection becomes `callcenter_default`."""
    started: list[Simulator] = []

    def start(*options: str) -> Simulator:
        sim = Simulator(*options)
        started.append(sim)
        monkeypatch.setenv("AIRFLOW_CONN_CALLCENTER_DEFAULT", sim.conn_uri())
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(start_simulator: Callable[..., Simulator]) -> Simulator:
    """An instant-dialing simulator without faults or rate limit."""
    return start_simulator("--call-seconds", "0", "--rate-limit", "0")
