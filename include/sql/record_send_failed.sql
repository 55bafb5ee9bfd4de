update call_filter_send_batch_log
set send_recvflag = -1, send_recvtime = now(), message = %(message)s
where id = %(log_id)s
