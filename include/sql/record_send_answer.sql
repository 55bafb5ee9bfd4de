-- The vendor's create answer, kept as it came before it is read (send_answer lists every create answer of
-- the batch, in order); its task id as soon as it is usable, unless another batch follows that vendor task
-- (vendor_task_owner.sql).
update call_filter_send_batch_log l
set send_answer = coalesce(send_answer, '[]'::jsonb) || jsonb_build_array(%(answer)s::jsonb),
    task_id = coalesce(
        case when not exists (
            select 1 from call_filter_send_batch_log o
            where o.task_id = %(task_id)s and o.id <> l.id
              and (o.filter_task_id = l.filter_task_id or o.vendor_status is null)
        ) then %(task_id)s end,
        l.task_id)
where l.id = %(log_id)s
