update call_filter_send_batch_log
set query_fromflag = %(flag_done)s, query_begintime = coalesce(query_begintime, now())
where id = %(log_id)s
