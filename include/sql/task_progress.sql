-- How far each filter task of `filter_task_ids` is: its row and the counts of its batches
-- (call_filter_batch_progress). `moved_at` is the latest time anything of the task was recorded: a watcher
-- tells a stuck run by it not changing.
select t.id as filter_task_id, t.batchid, t.status, t.step, t.totalnum, t.batch_size, t.runbegintime,
       t.runendtime, t.message,
       count(p.filter_send_batch_id) as planned,
       count(*) filter (where p.send_recvflag = %(flag_done)s or p.attempt > 1) as sent,
       count(*) filter (where p.query_recvflag <> %(flag_not_yet)s) as queried,
       count(*) filter (where p.status = %(batch_stored)s) as applied,
       count(*) filter (where p.status = %(batch_failed)s or p.query_recvflag = %(flag_failed)s) as failed,
       count(*) filter (where p.task_id is not null and p.send_recvflag = %(flag_done)s
                        and p.query_recvflag = %(flag_not_yet)s) as dialing,
       count(*) filter (where p.slot_wait_since is not null and not p.holds_slot) as waiting_for_slot,
       coalesce(sum(p.totalnum), 0) as numbers,
       coalesce(sum(p.numbers_screened), 0) as screened,
       greatest(t.runbegintime, t.runendtime, max(p.moved_at)) as moved_at
from call_filter_task t
left join call_filter_batch_progress p on p.filter_task_id = t.id
where t.id = any(%(filter_task_ids)s)
group by t.id
