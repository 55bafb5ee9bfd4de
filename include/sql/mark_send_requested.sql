update call_filter_send_batch_log
set send_fromflag = 1, send_begintime = now(), message = null
where id = %(log_id)s
