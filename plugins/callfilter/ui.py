"""The screening page (号码筛查) in the Airflow UI: a FastAPI app the api-server mounts (plugin module
`plugins/callfilter_ui_plugin.py`), server-rendered HTML and the same data as JSON under `api/`.

- preview: what a run for a batchid would do, counted by plan's own calling rules (plan_numbers.sql in a
  transaction rolled back: nothing is written);
- start: a `call_filter` run, created as the REST API creates one (its route function, so the same checks
  of the params and the same "triggered by" user);
- the filter tasks, newest first, and a task's batches, call outcomes and files (`files.Storage`);
- cancel: a `call_filter_cancel` run for the task.

Airflow does not authenticate plugin routes: every route depends on the api-server's own checks
(`airflow.api_fastapi.core_api.security.requires_access_dag`, the configured auth manager). Reading needs
read access to the runs of `call_filter`; start and cancel need permission to create runs of `call_filter`
and `call_filter_cancel`. The browser's Airflow session (its `_token` cookie) or a bearer token both work.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from callfilter import codes, db, files, progress, rules

log = logging.getLogger(__name__)

DAG_ID = "call_filter"
CANCEL_DAG_ID = "call_filter_cancel"
TASK_LIST_LIMIT = 100
ENDED = {
    codes.TaskStatus.FINISHED,
    codes.TaskStatus.FINISHED_WITH_ERRORS,
    codes.TaskStatus.FAILED,
    codes.TaskStatus.CANCELLED,
}

CanRead = Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID))
CanStart = Depends(requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=DAG_ID))
CanCancel = Depends(requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=CANCEL_DAG_ID))

app = FastAPI(title="callfilter screening page", docs_url=None, redoc_url=None, openapi_url=None)
templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))


class StartRequest(BaseModel):
    """What the start form sends; Airflow checks it against the DAG's params (callfilter.params)."""

    batchid: str = Field(min_length=1, max_length=64)
    creator: str = Field(default="", max_length=64)
    batch_size: int = Field(default=1000, ge=1, le=1000)
    calling_hours: str = "09:00-21:00"

    def conf(self, user_name: str) -> dict[str, Any]:
        return {
            "batchid": self.batchid.strip(),
            "creator": self.creator.strip() or user_name,
            "batch_size": self.batch_size,
            "calling_hours": self.calling_hours.strip(),
        }


# -- reading the business database ----------------------------------------------------------------------


def preview(batchid: str, batch_size: int) -> dict[str, Any]:
    """What a run would do now: rows, already valid, to screen, malformed, on the DNC list, waiting for
    re-screening, exhausted, repeated, numbers to dial and batches; and a task that keeps the batchid closed.
    Counted from plan_numbers.sql's own rule table in a transaction that is rolled back."""
    params = {"batchid": batchid, "batch_size": batch_size, **rules.screening_rules().sql_params()}
    with db.connect() as conn, conn.transaction(force_rollback=True):
        db.run(conn, "plan_numbers", params)
        counts = db.one(conn, "preview_counts", params) or {}
        blocking = db.one(conn, "find_open_task", {"batchid": batchid, "filter_task_id": None})
    return {"batchid": batchid, "batch_size": batch_size, **counts, "open_task": blocking}


def task_list() -> list[dict[str, Any]]:
    """The newest filter tasks with their batches' progress and their batchid's verdicts now."""
    with db.connect() as conn:
        tasks = db.all_rows(conn, "list_filter_tasks", {"limit": TASK_LIST_LIMIT})
        found = progress.read_progresses(conn, [task["id"] for task in tasks])
    for task in tasks:
        done = found[task["id"]]
        task.update(
            planned=done.planned,
            sent=done.sent,
            queried=done.queried,
            applied=done.applied,
            failed=done.failed,
        )
    return tasks


def task_by_run(dag_run_id: str) -> int | None:
    with db.connect() as conn:
        row = db.one(conn, "task_by_run", {"dag_run_id": dag_run_id})
    return int(row["id"]) if row else None


def task_files(task: dict[str, Any], batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The task's JSON and xlsx files that exist: requests, batch lists, results, the creator's summary."""
    task_id = task["id"]
    paths = [files.summary_path(task_id, task["creator"])]
    for batch in batches:
        order = batch["batch_order"]
        paths.append(files.batch_xlsx_path(task_id, order))
        for attempt in range(1, (batch["attempt"] or 1) + 1):
            paths += [
                files.request_path(task_id, order, attempt),
                files.raw_results_path(task_id, order, attempt),
                files.results_xlsx_path(task_id, order, attempt),
            ]
    storage = files.Storage()
    return [
        {"path": path, "name": path.removeprefix(files.task_dir(task_id) + "/")}
        for path in paths
        if storage.exists(path)
    ]


def task_detail(filter_task_id: int) -> dict[str, Any]:
    """A task's row, its batches, its call outcomes and its files; 404 when there is no such task."""
    with db.connect() as conn:
        task = db.one(conn, "get_task_row", {"filter_task_id": filter_task_id})
        if task is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"filter task {filter_task_id} does not exist")
        batches = db.all_rows(conn, "task_batches", {"filter_task_id": filter_task_id})
        outcomes = db.all_rows(conn, "task_outcomes", {"filter_task_id": filter_task_id})
    return {
        "task": task,
        "ended": task["status"] in ENDED,
        "batches": batches,
        "outcomes": outcomes,
        "files": task_files(task, batches),
    }


# -- Airflow runs -----------------------------------------------------------------------------------------


def trigger(dag_id: str, conf: dict[str, Any], note: str, request: Request, user: Any, session: Any) -> str:
    """Create a manual run of `dag_id` with `conf` through the REST API's own route function
    (POST /api/v2/dags/{dag_id}/dagRuns): the DAG's params are checked (400 naming the bad one), the run
    records the user who triggered it. Returns the run id."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody
    from airflow.api_fastapi.core_api.routes.public.dag_run import trigger_dag_run

    body = TriggerDAGRunPostBody(logical_date=None, conf=conf, note=note)
    run = trigger_dag_run(
        dag_id=dag_id, body=body, dag_bag=_dag_bag(), user=user, session=session, request=request
    )
    run_id = run.run_id
    session.commit()
    log.info("%s started %s run %s: %s", user.get_name(), dag_id, run_id, conf)
    return run_id


@functools.cache
def _dag_bag() -> Any:
    """The serialized DAGs, cached as the api-server caches its own (create_dag_bag: [api] dag_cache_*)."""
    from airflow.api_fastapi.common.dagbag import create_dag_bag

    return create_dag_bag()


def run_state(session: Any, dag_id: str, run_id: str | None) -> str | None:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    if not run_id:
        return None
    state = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    return str(state) if state is not None else None


def same_origin(request: Request) -> None:
    """A form post must come from a page of this server: the browser's session cookie rides along on a
    post from any site that the SameSite default lets through."""
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site")
    if (origin and urlsplit(origin).netloc != request.url.netloc) or site not in (
        None,
        "same-origin",
        "none",
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site form post refused")


# -- HTML -------------------------------------------------------------------------------------------------


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    prefix = request.scope.get("root_path", "")
    return templates.TemplateResponse(
        request,
        template,
        {"prefix": prefix, "airflow": prefix.rsplit("/", 1)[0], "quote": quote, **context},
        status_code=status_code,
    )


@app.exception_handler(HTTPException)
async def _refused(request: Request, exc: HTTPException) -> Response:
    """JSON for api/ (and bearer-token callers); for a person: the login page or a page saying why not."""
    page = not request.url.path.startswith(request.scope.get("root_path", "") + "/api/")
    if page and exc.status_code == status.HTTP_401_UNAUTHORIZED and request.method == "GET":
        from airflow.api_fastapi.app import get_auth_manager

        return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
    if page and exc.status_code in (status.HTTP_403_FORBIDDEN, status.HTTP_404_NOT_FOUND, 400, 409):
        return _page(request, "refused.html", exc.status_code, code=exc.status_code, detail=exc.detail)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


@app.get("/", response_class=HTMLResponse, dependencies=[CanRead])
def index(request: Request) -> HTMLResponse:
    return _page(request, "index.html", tasks=task_list(), form={}, preview=None)


@app.get("/preview", response_class=HTMLResponse, dependencies=[CanRead])
def preview_page(
    request: Request,
    batchid: Annotated[str, Query(min_length=1, max_length=64)],
    creator: str = "",
    batch_size: Annotated[int, Query(ge=1, le=1000)] = 1000,
    calling_hours: str = "09:00-21:00",
) -> HTMLResponse:
    form = {"batchid": batchid, "creator": creator, "batch_size": batch_size, "calling_hours": calling_hours}
    return _page(request, "index.html", tasks=task_list(), form=form, preview=preview(batchid, batch_size))


@app.post("/start", dependencies=[CanStart, Depends(same_origin)])
def start_page(
    request: Request, user: GetUserDep, session: SessionDep, form: Annotated[StartRequest, Form()]
) -> RedirectResponse:
    run_id = trigger(
        DAG_ID, form.conf(user.get_name()), "started from the screening page", request, user, session
    )
    return RedirectResponse(f"{request.scope.get('root_path', '')}/runs/{quote(run_id, safe='')}", 303)


@app.get("/runs/{run_id}", response_class=HTMLResponse, dependencies=[CanRead])
def run_page(request: Request, run_id: str, session: SessionDep) -> Response:
    """Where start leads: the task's page once register has made the task, until then the run's state."""
    filter_task_id = task_by_run(run_id)
    if filter_task_id is not None:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/tasks/{filter_task_id}", 303)
    return _page(request, "run.html", run_id=run_id, state=run_state(session, DAG_ID, run_id))


@app.get("/tasks/{filter_task_id}", response_class=HTMLResponse, dependencies=[CanRead])
def task_page(request: Request, filter_task_id: int, session: SessionDep) -> HTMLResponse:
    detail = task_detail(filter_task_id)
    state = run_state(session, DAG_ID, detail["task"]["dag_run_id"])
    return _page(
        request, "task.html", **detail, run_state=state, cancel_run=request.query_params.get("cancel")
    )


@app.post("/tasks/{filter_task_id}/cancel", dependencies=[CanCancel, Depends(same_origin)])
def cancel_page(
    request: Request, filter_task_id: int, user: GetUserDep, session: SessionDep
) -> RedirectResponse:
    run_id = cancel(filter_task_id, request, user, session)
    prefix = request.scope.get("root_path", "")
    return RedirectResponse(f"{prefix}/tasks/{filter_task_id}?cancel={quote(run_id, safe='')}", 303)


@app.get("/tasks/{filter_task_id}/files/{path:path}", dependencies=[CanRead])
def download(filter_task_id: int, path: str) -> Response:
    """One of the task's files, by its name under task-N/ (only the names the task's page lists)."""
    detail = task_detail(filter_task_id)
    wanted = f"{files.task_dir(filter_task_id)}/{path}"
    if wanted not in {f["path"] for f in detail["files"]}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"filter task {filter_task_id} has no file {path}")
    media = (
        "application/json"
        if path.endswith(".json")
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    name = quote(path.rsplit("/", 1)[-1])
    return Response(
        files.Storage().read_bytes(wanted),
        media_type=media,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"},
    )


# -- JSON -------------------------------------------------------------------------------------------------


def cancel(filter_task_id: int, request: Request, user: Any, session: Any) -> str:
    detail = task_detail(filter_task_id)  # 404 for a task that does not exist
    if detail["ended"]:
        raise HTTPException(status.HTTP_409_CONFLICT, f"filter task {filter_task_id} has ended")
    conf = {"filter_task_id": filter_task_id, "reason": f"screening page, {user.get_name()}"}
    return trigger(CANCEL_DAG_ID, conf, "cancelled from the screening page", request, user, session)


@app.get("/api/preview", dependencies=[CanRead])
def preview_api(
    batchid: Annotated[str, Query(min_length=1, max_length=64)],
    batch_size: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> dict[str, Any]:
    return preview(batchid, batch_size)


@app.post("/api/tasks", status_code=201, dependencies=[CanStart])
def start_api(body: StartRequest, request: Request, user: GetUserDep, session: SessionDep) -> dict[str, Any]:
    run_id = trigger(
        DAG_ID, body.conf(user.get_name()), "started from the screening page", request, user, session
    )
    return {"dag_id": DAG_ID, "dag_run_id": run_id}


@app.get("/api/tasks", dependencies=[CanRead])
def tasks_api() -> list[dict[str, Any]]:
    return task_list()


@app.get("/api/tasks/{filter_task_id}", dependencies=[CanRead])
def task_api(filter_task_id: int) -> dict[str, Any]:
    return task_detail(filter_task_id)


@app.post("/api/tasks/{filter_task_id}/cancel", status_code=201, dependencies=[CanCancel])
def cancel_api(
    filter_task_id: int, request: Request, user: GetUserDep, session: SessionDep
) -> dict[str, Any]:
    return {"dag_id": CANCEL_DAG_ID, "dag_run_id": cancel(filter_task_id, request, user, session)}
