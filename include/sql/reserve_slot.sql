-- Take one of the vendor's unfinished-task slots for a batch (a batch holding one keeps it).
-- Rows holding a slot are the pipeline's unfinished vendor tasks; the lock makes the count exact.
select pg_advisory_xact_lock(hashtext('callfilter vendor slots'));

update call_filter_send_batch_log
set holds_slot = true, slot_wait_since = null, slot_since = case when holds_slot then slot_since else now() end
where id = %(log_id)s
  and (holds_slot or (select count(*) from call_filter_send_batch_log where holds_slot) < %(cap)s)
