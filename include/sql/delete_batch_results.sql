delete from call_filter_send_queryres where filter_send_batch_id = %(batch_id)s and nid = any(%(nids)s)
