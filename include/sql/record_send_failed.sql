update call_filter_send_batch_log
set send_recvflag = %(flag_failed)s, send_recvtime = now(), message = %(message)s,
    holds_slot = holds_slot and not %(final)s
where id = %(log_id)s;

update call_filter_send_batch set status = %(batch_failed)s where id = %(batch_id)s and %(final)s
