update call_filter_send_batch_log
set send_fromflag = %(flag_done)s, send_begintime = now(), message = null
where id = %(log_id)s
