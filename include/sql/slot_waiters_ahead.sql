-- How many batches of the same task have waited for a slot longer than this one.
select count(*) as ahead
from call_filter_send_batch_log w
join call_filter_send_batch_log me on me.id = %(log_id)s
where w.filter_task_id = me.filter_task_id
  and w.slot_wait_since is not null
  and not w.holds_slot
  and (w.slot_wait_since, w.id) < (coalesce(me.slot_wait_since, now()), me.id)
