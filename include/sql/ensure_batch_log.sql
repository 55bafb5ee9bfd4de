insert into call_filter_send_batch_log (filter_task_id, filter_send_batch_id, batch_order, totalnum, creator,
                                        runbegintime)
select filter_task_id, id, batch_order, totalnum, creator, now()
from call_filter_send_batch where id = %(batch_id)s
on conflict (filter_send_batch_id) do nothing;

update call_filter_task set step = greatest(step, %(step_sending)s)
where id = (select filter_task_id from call_filter_send_batch where id = %(batch_id)s);

select * from call_filter_send_batch_log where filter_send_batch_id = %(batch_id)s
