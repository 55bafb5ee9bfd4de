"""The screening page (callfilter.ui, plugins/callfilter_ui_plugin.py) under the real Airflow components
(tests/stack.py): its endpoints through the api-server with the SimpleAuthManager's users, then the page in
headless Chromium (Debian's `chromium`, driven by Playwright) as a person uses it. Screenshots of every
page go to .test-run/screenshots/.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from callfilter.params import timezone
from callfilter_dev import devenv
from tests.conftest import APP_ID, APP_SECRET, RUN_DIR, module_database
from tests.stack import AirflowStack

pytestmark = pytest.mark.stack

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = RUN_DIR / "screenshots"
USERS = {"viewer": "viewer", "nobody": ""}  # read only; no role at all (the admin is the stack's)


def load_batch(conn: Any, batchid: str, prefix: str, first_telid: int) -> dict[str, int]:
    """A batch with every case the preview counts; returns what it should say for batches of 4."""
    good = [f"{prefix}{i:04d}" for i in range(1, 13)]  # 12 numbers; the last two go on the DNC list
    numbers = [
        *good,
        f"+86 {good[0][:3]}-{good[0][3:7]}-{good[0][7:]}",  # repeats good[0] in another form
        good[1].translate(str.maketrans("0123456789", "０１２３４５６７８９")),  # full-width: repeats good[1]
        "12345",
        "phone?",
        "1-2",  # malformed
        f"{prefix}0013",  # already valid
        f"{prefix}0014",  # unknown, screened a moment ago: waits for its re-screen
    ]
    devenv.load_case_tel(conn, batchid, numbers, first_telid=first_telid)
    devenv.load_dnc(conn, good[10:])
    conn.execute("update case_tel set valid_status = 1 where telno = %s", (f"{prefix}0013",))
    conn.execute(
        "update case_tel set screen_attempts = 1, last_screened_at = now() where telno = %s",
        (f"{prefix}0014",),
    )
    return {
        "total": 19,
        "already_valid": 1,
        "to_screen": 18,
        "malformed": 3,
        "dnc": 2,
        "waiting": 1,
        "exhausted": 0,
        "repeated": 2,
        "numbers_to_dial": 10,
        "batches": 3,
    }


@pytest.fixture(scope="module")
def business_db(database):
    with module_database(database, "callfilter_ui") as handle:
        yield handle


@pytest.fixture(scope="module")
def stack(business_db, tmp_path_factory) -> Iterator[AirflowStack]:
    database, name, _ = business_db
    workdir = tmp_path_factory.mktemp("ui-stack")
    port = devenv.free_port()
    vendor = devenv.start_simulator(
        port, APP_ID, APP_SECRET, "--call-seconds", "0", "--rate-limit", "0",
        log_path=RUN_DIR / f"simulator-ui-{port}.log",
    )  # fmt: skip
    try:
        env = devenv.airflow_env(
            workdir / "airflow",
            workdir / "files",
            database.airflow_conn(name),
            devenv.callcenter_conn(port, APP_ID, APP_SECRET),
            CALLFILTER_POLL_INTERVAL="1",
        )
        with AirflowStack(workdir, env, database=database, users=USERS) as running:
            running.wait_for_dag("call_filter")
            running.wait_for_dag("call_filter_cancel")
            yield running
    finally:
        devenv.stop_process(vendor, grace=10)


def page_api(stack: AirflowStack, method: str, path: str, user: str | None = "admin", **kwargs: Any):
    headers = {
        **kwargs.pop("headers", {}),
        **({"Authorization": f"Bearer {stack.token(user)}"} if user else {}),
    }
    return requests.request(
        method,
        f"{stack.base_url}/callfilter/{path}",
        headers=headers,
        timeout=60,
        allow_redirects=False,
        **kwargs,
    )


START = {"batchid": "UI-1", "creator": "张三", "batch_size": 4, "calling_hours": ""}


@pytest.fixture(scope="module")
def api_run(stack, business_db) -> dict[str, Any]:
    """Batch UI-1 previewed, then started through the page's API as the admin: the run goes on while the
    browser test runs its own (the two share the stack's wait)."""
    _, _, conn = business_db
    expected = load_batch(conn, "UI-1", "1390000", first_telid=1)
    preview = page_api(stack, "GET", "api/preview", params={"batchid": "UI-1", "batch_size": 4})
    written = conn.execute("select count(*) as n from case_tel where valid_reason is not null").fetchone()[
        "n"
    ]
    refused = {
        "viewer start": page_api(stack, "POST", "api/tasks", user="viewer", json=START).status_code,
        "bad param": page_api(stack, "POST", "api/tasks", json={**START, "calling_hours": "25:00-26:00"}),
    }
    started = page_api(stack, "POST", "api/tasks", json=START)
    assert started.status_code == 201, started.text
    return {
        "expected": expected,
        "preview": preview,
        "written_by_preview": written,
        "refused": refused,
        "run_id": started.json()["dag_run_id"],
    }


def test_preview_start_and_permissions_through_the_api_server(stack, api_run):
    preview = api_run["preview"]
    assert preview.status_code == 200, preview.text
    assert {k: preview.json()[k] for k in api_run["expected"]} == api_run["expected"]
    assert preview.json()["open_task"] is None
    assert api_run["written_by_preview"] == 0  # the preview wrote nothing

    # Permissions come from the auth manager: a viewer reads but cannot start or cancel, a user without a
    # role reads nothing, no token is no access.
    assert api_run["refused"]["viewer start"] == 403
    assert page_api(stack, "GET", "api/tasks", user="viewer").status_code == 200
    assert page_api(stack, "POST", "api/tasks/1/cancel", user="viewer").status_code == 403
    assert page_api(stack, "GET", "api/tasks", user="nobody").status_code == 403
    assert page_api(stack, "GET", "api/preview?batchid=UI-1", user="nobody").status_code == 403
    assert page_api(stack, "GET", "api/tasks", user=None).status_code == 401
    login = page_api(stack, "GET", "", user=None)  # a person without a session goes to the login page
    assert login.status_code == 303 and "/auth/login" in login.headers["location"]
    # A form post from another site is refused, whoever's session rides along.
    elsewhere = page_api(
        stack, "POST", "start", headers={"Origin": "http://elsewhere.example"},
        data={"batchid": "NO-SUCH", "creator": "x", "batch_size": "4", "calling_hours": ""},
    )  # fmt: skip
    assert elsewhere.status_code == 403
    # A bad param is refused by Airflow's own check of the DAG's params, and no run is made.
    bad = api_run["refused"]["bad param"]
    assert bad.status_code == 400 and "calling_hours" in bad.text

    runs = stack.api("GET", "dags/call_filter/dagRuns")["dag_runs"]
    run = next(r for r in runs if r["dag_run_id"] == api_run["run_id"])
    assert run["triggering_user_name"] == "admin" and run["conf"]["creator"] == "张三"
    assert [r["conf"]["batchid"] for r in runs].count("UI-1") == 1


# -- the page in a browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert shutil.which("chromium") or shutil.which(CHROMIUM), (
        "Debian's chromium is missing: apt-get install chromium (.ci/run installs it)"
    )
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def log_in(browser: Any, stack: AirflowStack, user: str) -> Any:
    """A browser page logged in to Airflow as `user` through its login form, opened at the screening page."""
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, locale="zh-CN", accept_downloads=True
    )
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(f"{stack.base_url}/callfilter/")
    page.wait_for_url("**/auth/login**")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", stack.password(user))
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.base_url}/callfilter/")
    return page


def shoot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def fill_task_form(page: Any, batchid: str, creator: str, calling_hours: str) -> None:
    page.fill("input[name=batchid]", batchid)
    page.fill("input[name=creator]", creator)
    page.fill("input[name=batch_size]", "4")
    page.fill("input[name=calling_hours]", calling_hours)
    page.click("#preview")
    page.wait_for_selector("#preview-table")


def wait_for_task_state(page: Any, label: str, timeout: float = 180) -> None:
    """The task page refreshes itself while the task runs: wait until it shows `label`."""
    deadline = time.monotonic() + timeout
    while (state := page.locator("#task-state").text_content()) != label:
        assert time.monotonic() < deadline, f"task still {state}"
        page.wait_for_timeout(1000)


def closed_window() -> str:
    """Calling hours that exclude the next two hours: a run started now waits to send."""
    now = datetime.now(timezone())
    return f"{(now + timedelta(hours=3)):%H:00}-{(now + timedelta(hours=4)):%H:00}"


def test_page_in_the_browser(stack, business_db, browser):
    _, _, conn = business_db
    expected = load_batch(conn, "UI-2", "1370000", first_telid=101)
    load_batch(conn, "UI-3", "1360000", first_telid=201)

    page = log_in(browser, stack, "admin")
    # The UI's navigation links to the page, which Airflow shows in its frame.
    page.goto(f"{stack.base_url}/plugin/callfilter")
    frame = page.frame_locator("iframe")
    frame.locator("#task-form").wait_for()
    shoot(page, "0-in-airflow-nav")

    page.goto(f"{stack.base_url}/callfilter/")
    fill_task_form(page, "UI-2", "李四", "")
    shown = {
        cell.get_attribute("data-key"): int(cell.text_content())
        for cell in page.locator("td[data-key]").all()
    }
    assert shown == expected
    shoot(page, "1-preview")

    page.click("#start")  # -> the run's page, then the task's page once register made the task
    page.wait_for_url("**/callfilter/tasks/*", timeout=120_000)
    task_id = page.url.rsplit("/", 1)[-1]
    wait_for_task_state(page, "已完成")
    page.locator("#run-state", has_text="success").wait_for(timeout=60_000)
    assert page.locator("#batches tr[data-batch]").count() == 3
    assert page.locator("#outcomes tr[data-outcome]").count() >= 1
    shoot(page, "2-task")

    summary = page.locator("#files a", has_text="summary.xlsx")
    with page.expect_download() as download:
        summary.click()
    assert download.value.suggested_filename.endswith(f"李四-task-{task_id}-summary.xlsx")
    assert open(download.value.path(), "rb").read(2) == b"PK"

    page.goto(f"{stack.base_url}/callfilter/")
    row = page.locator(f"#tasks tr[data-task='{task_id}']")
    assert "3 / 3 / 3 of 3" in row.locator(".progress").text_content()
    assert row.locator("a", has_text="run").get_attribute("href").startswith("/dags/call_filter/runs/")
    shoot(page, "3-list")

    # A run waiting for its calling hours is cancelled from its page.
    fill_task_form(page, "UI-3", "王五", closed_window())
    page.click("#start")
    page.wait_for_url("**/callfilter/tasks/*", timeout=120_000)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    page.wait_for_selector("#cancel-started")
    wait_for_task_state(page, "已取消", timeout=60)
    shoot(page, "4-cancelled")

    # A viewer sees the tasks but may not start one.
    viewer = log_in(browser, stack, "viewer")
    assert viewer.locator(f"#tasks tr[data-task='{task_id}']").count() == 1
    fill_task_form(viewer, "UI-2", "viewer", "")
    viewer.click("#start")
    assert viewer.locator("h1").text_content().startswith("无权限")
    shoot(viewer, "5-viewer-refused")

    # A user without a role sees nothing.
    nobody = log_in(browser, stack, "nobody")
    assert "无权限" in nobody.locator("h1").text_content()
    assert nobody.locator("#tasks").count() == 0
    shoot(nobody, "6-nobody-refused")


def test_the_task_list_and_page_show_the_run(stack, business_db, api_run):
    _, _, conn = business_db
    run_id = api_run["run_id"]
    assert stack.wait_for_run("call_filter", run_id, timeout=180) == "success"

    tasks = page_api(stack, "GET", "api/tasks", user="viewer").json()
    assert [t["id"] for t in tasks] == sorted((t["id"] for t in tasks), reverse=True)  # newest first
    task = next(t for t in tasks if t["dag_run_id"] == run_id)
    verdicts = conn.execute(
        "select count(*) filter (where valid_status = 1) as valid, count(*) filter (where valid_status = 2) "
        "as invalid, count(*) filter (where valid_status = 0) as unknown from case_tel where batchid = 'UI-1'"
    ).fetchone()
    assert (task["batchid"], task["creator"], task["status"], task["status_label"]) == (
        "UI-1",
        "张三",
        2,
        "已完成",
    )
    assert (task["planned"], task["sent"], task["queried"], task["applied"], task["failed"]) == (
        3,
        3,
        3,
        3,
        0,
    )
    assert {k: task[k] for k in ("valid", "invalid", "unknown")} == verdicts
    assert task["runbegintime"] and task["runendtime"]

    detail = page_api(stack, "GET", f"api/tasks/{task['id']}", user="viewer").json()
    assert [b["batch_order"] for b in detail["batches"]] == [1, 2, 3]
    assert [b["totalnum"] for b in detail["batches"]] == [4, 4, 2]
    assert all(b["vendor_task_id"] and b["status_name"] == "stored" for b in detail["batches"])
    assert sum(b["valid"] + b["invalid"] + b["unknown"] for b in detail["batches"]) == 10
    assert sum(o["numbers"] for o in detail["outcomes"]) == 10
    summary_name = f"张三-task-{task['id']}-summary.xlsx"
    assert {summary_name, "requests/batch-0001.json", "results/batch-0003.xlsx"} <= {
        f["name"] for f in detail["files"]
    }

    summary = page_api(stack, "GET", f"tasks/{task['id']}/files/{summary_name}", user="viewer")
    assert summary.status_code == 200 and summary.content[:2] == b"PK"
    request_json = page_api(stack, "GET", f"tasks/{task['id']}/files/requests/batch-0002.json", user="viewer")
    assert request_json.json()["request_id"] == f"cf-{task['id']}-0002"
    for path in ("../../etc/passwd", "requests/batch-0009.json"):  # only the task's own files
        assert page_api(stack, "GET", f"tasks/{task['id']}/files/{path}").status_code == 404
    assert page_api(stack, "POST", f"api/tasks/{task['id']}/cancel").status_code == 409  # it has ended
