-- Tasks whose files may go: finished or cancelled, or failed / finished with errors with every batch stored
-- (nothing left to re-dial).
select t.id from call_filter_task t
where t.status in (%(task_finished)s, %(task_cancelled)s)
   or (t.status in (%(task_failed)s, %(task_finished_with_errors)s)
       and not exists (select 1 from call_filter_send_batch b where b.filter_task_id = t.id and b.status <> %(batch_stored)s))
