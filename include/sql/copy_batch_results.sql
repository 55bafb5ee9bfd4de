copy call_filter_send_queryres (filter_send_batch_id, nid, phone, call_status, billsec, call_start_time,
    answer_time, call_end_time, wait_time, uniqueid, fail_call_times, success_call_times, ivr_key, agent,
    agent_billsec, agent_answer_time, agent_end_time, hangup_cause, sip_code) from stdin
