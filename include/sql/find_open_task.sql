-- A task that keeps the batchid closed: registered or running, or ended with a batch whose results are not
-- all stored and applied.
select t.id, t.status, t.dag_run_id
from call_filter_task t
where t.batchid = %(batchid)s
  and t.id <> coalesce(%(filter_task_id)s, -1)
  and (t.status in (%(task_registered)s, %(task_running)s)
       or (t.status in (%(task_failed)s, %(task_finished_with_errors)s)
           and exists (select 1 from call_filter_send_batch b where b.filter_task_id = t.id and b.status <> %(batch_stored)s)))
order by t.id
limit 1
