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
    assert order["plan"] == {"send"}
    assert order["send"] == {"query"}
    assert order["query"] == {"apply_verdicts"}
    assert order["apply_verdicts"] == {"finish"}
    assert dag.get_task("send").pool == "callcenter" and dag.get_task("query").pool == "callcenter"
    assert set(dag.params) == {
        "batchid", "creator", "categoryid", "tasktype", "batch_size", "max_attempts", "calling_hours", "filter_task_id",
    }  # fmt: skip
