"""The vendor connection's extras (CA bundle, verify, proxies, timeout) hold on the workers' hook and in
the triggerer's async hook alike, against the simulator over real HTTPS and HTTP."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from callfilter.vendor import (
    TaskNotFoundError,
    VendorAsyncHook,
    VendorHook,
    VendorUnavailableError,
)
from callfilter_dev import devenv
from callfilter_dev.simulator import SimulatorConfig, build_app
from tests.conftest import APP_ID, APP_SECRET

NUMBERS = [{"nid": f"{i:06d}", "phone": str(13800000000 + i)} for i in range(5)]


def _certificate(subject: str, key, issuer: x509.Name, issuer_key, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def tls_simulator(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """The simulator served over HTTPS with a certificate of a private CA; yields (port, CA bundle path)."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callfilter test CA")])
    ca_cert = _certificate("callfilter test CA", ca_key, ca_name, ca_key, ca=True)
    server_cert = _certificate("127.0.0.1", server_key, ca_name, ca_key, ca=False)
    ca_path = _pem(tmp_path / "ca.pem", ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path = _pem(tmp_path / "server.pem", server_cert.public_bytes(serialization.Encoding.PEM))
    key_path = _pem(
        tmp_path / "server.key",
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    port = devenv.free_port()
    config = SimulatorConfig(app_id=APP_ID, app_secret=APP_SECRET, call_seconds=0, rate_limit=0)
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(config),
            host="127.0.0.1",
            port=port,
            ssl_certfile=cert_path,
            ssl_keyfile=key_path,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the HTTPS simulator did not start"
        time.sleep(0.05)
    yield port, ca_path
    server.should_exit = True
    thread.join(10)


def use_connection(monkeypatch: pytest.MonkeyPatch, port: int, scheme: str, extra: dict) -> None:
    conn = json.loads(devenv.callcenter_conn(port, APP_ID, APP_SECRET))
    monkeypatch.setenv(
        "AIRFLOW_CONN_CALLCENTER_DEFAULT", json.dumps({**conn, "schema": scheme, "extra": extra})
    )


def async_status(vendor_task_id: str) -> dict:
    return asyncio.run(VendorAsyncHook().task_status(vendor_task_id))


def test_the_connections_ca_bundle_is_trusted_on_workers_and_in_the_triggerer(tls_simulator, monkeypatch):
    port, ca_path = tls_simulator
    use_connection(monkeypatch, port, "https", {"verify": ca_path})
    created = VendorHook().create_task("cf-tls-0001", "over TLS", NUMBERS)
    assert created["accepted"] == 5
    assert VendorHook().task_status(created["task_id"])["status"] == "FINISHED"
    assert async_status(created["task_id"])["status"] == "FINISHED"

    # Without the bundle the private CA is not trusted: both sides refuse the vendor's certificate.
    use_connection(monkeypatch, port, "https", {})
    with pytest.raises(VendorUnavailableError, match="SSLError"):
        VendorHook(max_attempts=1).task_status(created["task_id"])
    with pytest.raises(VendorUnavailableError, match="Certificate"):
        async_status(created["task_id"])

    # verify: false turns checking off on both sides alike.
    use_connection(monkeypatch, port, "https", {"verify": False})
    assert VendorHook().task_status(created["task_id"])["total"] == 5
    assert async_status(created["task_id"])["total"] == 5


def test_the_connections_timeout_holds_in_the_triggerer(start_simulator, monkeypatch):
    sim = start_simulator("--latency", "0.5", "--rate-limit", "0")
    use_connection(monkeypatch, sim.port, "http", {"timeout": 0.1})
    with pytest.raises(VendorUnavailableError, match="Timeout"):
        async_status("T1")
    with pytest.raises(VendorUnavailableError, match="Timeout"):
        VendorHook(max_attempts=1).task_status("T1")
    use_connection(monkeypatch, sim.port, "http", {"timeout": 5})
    with pytest.raises(TaskNotFoundError):
        async_status("T1")


def test_the_connections_proxy_is_used_on_both_sides(simulator, monkeypatch):
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    use_connection(monkeypatch, simulator.port, "http", {"proxies": {"http": "http://127.0.0.1:9"}})
    # Nothing listens on the proxy's port: a request that went through the proxy cannot get an answer.
    with pytest.raises(VendorUnavailableError, match="ProxyError|ConnectionError"):
        VendorHook(max_attempts=1).task_status("T1")
    with pytest.raises(VendorUnavailableError, match="Proxy|Connect"):
        async_status("T1")
    use_connection(monkeypatch, simulator.port, "http", {})
    with pytest.raises(TaskNotFoundError):
        async_status("T1")


def test_a_missing_or_unreachable_vendor_connection_is_named_and_retried(monkeypatch):
    from airflow.exceptions import AirflowNotFoundException

    monkeypatch.delenv("AIRFLOW_CONN_CALLCENTER_DEFAULT", raising=False)
    with pytest.raises(AirflowNotFoundException, match="callcenter_default"):
        VendorHook().task_status("T1")
    with pytest.raises(AirflowNotFoundException, match="callcenter_default"):
        asyncio.run(VendorAsyncHook().task_status("T1"))
    # Nothing listens there: a connection error, retried (by the hook, then by Airflow), secret not shown.
    monkeypatch.setenv(
        "AIRFLOW_CONN_CALLCENTER_DEFAULT", devenv.callcenter_conn(devenv.free_port(), APP_ID, APP_SECRET)
    )
    with pytest.raises(VendorUnavailableError) as err:
        VendorHook(max_attempts=2, backoff_base=0.01, backoff_max=0.02).task_status("T1")
    assert err.value.retryable and err.value.attempts == 2 and APP_SECRET not in str(err.value)
