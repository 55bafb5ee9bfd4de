-- A try of the batch's send asks the vendor for its task: the send's duration runs from the first try.
update call_filter_send_batch_log
set send_fromflag = %(flag_done)s, send_begintime = coalesce(send_begintime, now()), message = null
where id = %(log_id)s
