"""Schemathesis against the simulator's own OpenAPI document, over real HTTP with signed requests."""

from __future__ import annotations

import itertools
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from callfilter import contract
from tests.conftest import APP_ID, APP_SECRET, Simulator


@pytest.fixture(scope="module")
def api_schema():
    sim = Simulator("--call-seconds", "0", "--rate-limit", "0", "--max-unfinished", "1000")
    try:
        yield schemathesis.openapi.from_url(sim.url + "/openapi.json")
    finally:
        sim.stop()


def signed_send(case) -> requests.Response:
    kwargs = case.as_transport_kwargs(base_url=case.operation.base_url)
    request = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        params=kwargs.get("params"),
        json=kwargs.get("json"),
        data=kwargs.get("data"),
        headers={k: v for k, v in (kwargs.get("headers") or {}).items() if not k.lower().startswith("x-")},
    ).prepare()
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    signed = contract.signed_headers(
        APP_ID, APP_SECRET, request.method, request.path_url, body, int(time.time())
    )
    request.headers.update(signed)
    # The case carries the auth actually sent, so schemathesis's auth checks judge the real request.
    case.headers = {**(case.headers or {}), **signed}
    with requests.Session() as session:
        return session.send(request, timeout=10)


def test_simulator_serves_its_openapi_document(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 4
    statuses: set[int] = set()
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    for operation, mode in itertools.product(operations, modes):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case) -> None:
            response = signed_send(case)
            assert response.headers["content-type"].startswith("application/json")
            envelope = response.json()
            assert response.status_code == contract.HTTP_STATUS[envelope["code"]], envelope
            statuses.add(response.status_code)
            # Status code, content type and body schema as documented; never a server error. (Schemathesis
            # takes the signature headers for generated, likely invalid auth: test_unsigned_requests_are_refused
            # checks the auth instead.)
            case.validate_response(response, excluded_checks=[schemathesis.checks.ignored_auth])

        try:
            conforms()
        except Unsatisfiable:
            # A free-form string path parameter has no invalid value: nothing negative to send.
            assert mode == schemathesis.GenerationMode.NEGATIVE
            assert operation.path in ("/v1/outbound/tasks/{task_id}", "/v1/outbound/tasks/{task_id}/cancel")
    assert {200, 400, 404} <= statuses and 401 not in statuses


def test_openapi_document_matches_the_contract(api_schema):
    paths = api_schema.raw_schema["paths"]
    assert set(paths) == {
        "/v1/outbound/tasks",
        "/v1/outbound/tasks/{task_id}",
        "/v1/outbound/tasks/{task_id}/results",
        "/v1/outbound/tasks/{task_id}/cancel",
    }
    create = paths["/v1/outbound/tasks"]["post"]
    assert {"200", "400", "401", "404", "409", "429", "500"} <= set(create["responses"])
    record = api_schema.raw_schema["components"]["schemas"]["ResultRecord"]["properties"]
    assert set(record) == {
        "nid", "phone", "call_status", "hangup_cause", "sip_code", "billsec", "wait_time", "call_start_time",
        "answer_time", "call_end_time", "uniqueid", "fail_call_times", "success_call_times", "ivr_key", "agent",
        "agent_billsec", "agent_answer_time", "agent_end_time",
    }  # fmt: skip


def test_unsigned_requests_are_refused(api_schema):
    base = api_schema.raw_schema["servers"][0]["url"] if api_schema.raw_schema.get("servers") else None
    url = base or api_schema.location.rsplit("/openapi.json", 1)[0]
    for method, path in [("GET", "/v1/outbound/tasks/T1"), ("POST", "/v1/outbound/tasks"),
                         ("GET", "/v1/outbound/tasks/T1/results"), ("POST", "/v1/outbound/tasks/T1/cancel")]:  # fmt: skip
        response = requests.request(method, url + path, json={} if method == "POST" else None, timeout=5)
        assert response.status_code == 401 and response.json()["code"] == 40101, (method, path)
