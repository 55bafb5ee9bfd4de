"""The DAG folder imports cleanly and call_filter is wired as documented."""

from __future__ import annotations

from tests.conftest import ROOT


def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_dags_import_without_errors():
    bag = dagbag()
    assert bag.import_errors == {}
    assert "call_filter" in bag.dags


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
    assert set(dag.params) == {
        "batchid", "creator", "categoryid", "tasktype", "batch_size", "max_attempts", "calling_hours", "filter_task_id",
    }  # fmt: skip


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
