-- The vendor's create answer, kept as it came before it is read (send_answer lists every create answer of
-- the batch, in order); its task id as soon as it is usable (null: none, or another batch's).
update call_filter_send_batch_log
set send_answer = coalesce(send_answer, '[]'::jsonb) || jsonb_build_array(%(answer)s::jsonb),
    task_id = coalesce(%(task_id)s, task_id)
where id = %(log_id)s
