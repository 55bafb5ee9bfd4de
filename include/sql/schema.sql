-- callfilter schema: idempotent; applying it twice to an empty or existing database changes nothing.

-- The business system's number table (created if absent, never dropped).
create table if not exists case_tel (
    telid bigint primary key,
    batchid varchar(64) not null,
    telno varchar(32) not null,
    valid_status smallint not null default 0,
    valid_reason varchar(32),
    valid_checked_at timestamptz
);
create index if not exists case_tel_batchid_status_idx on case_tel (batchid, valid_status);

-- One filter task per screening of a batchid; the business system may insert status 0 rows itself.
create table if not exists call_filter_task (
    id bigserial primary key,
    step smallint not null default 0,
    status smallint not null default 0,
    batchid varchar(64) not null,
    categoryid varchar(64),
    tasktype varchar(64),
    totalnum integer not null default 0,
    creator varchar(64) not null default 'airflow',
    createtime timestamptz not null default now(),
    runbegintime timestamptz,
    runendtime timestamptz,
    batch_size integer not null default 1000 check (batch_size between 1 and 1000),
    max_attempts smallint not null default 1 check (max_attempts between 1 and 3),
    calling_hours varchar(11) not null default '09:00-21:00',
    dag_run_id varchar(250),
    message text
);
create index if not exists call_filter_task_batchid_status_idx on call_filter_task (batchid, status);
create index if not exists call_filter_task_dag_run_idx on call_filter_task (dag_run_id);
-- The limits of the run params (callfilter.params.RUN_PARAMS, which Airflow checks) on the task rows that
-- the business system writes itself: batch_size and max_attempts are checked above; calling_hours is
-- "HH:MM-HH:MM" with a start that differs from its end, or "" for none. Added to an existing table too, as
-- not valid: rows already there are not checked. (No line of the block ends with a semicolon: statements
-- are split there.)
do $$ begin
    if not exists (select from pg_constraint where conrelid = 'call_filter_task'::regclass
                   and conname = 'call_filter_task_calling_hours_check') then
        alter table call_filter_task add constraint call_filter_task_calling_hours_check check (
            calling_hours = ''
            or (calling_hours ~ '^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$'
                and left(calling_hours, 5) <> right(calling_hours, 5))
        ) not valid; end if; end
$$;

-- One row per vendor task to send (at most 1000 distinct numbers).
create table if not exists call_filter_send_batch (
    id bigserial primary key,
    status smallint not null default 0,
    filter_task_id bigint not null references call_filter_task (id),
    batch_order integer not null,
    totalnum integer not null,
    creator varchar(64) not null,
    createtime timestamptz not null default now(),
    unique (filter_task_id, batch_order)
);

-- The send and query record of a batch: one row per batch, updated by retries.
create table if not exists call_filter_send_batch_log (
    id bigserial primary key,
    filter_task_id bigint not null references call_filter_task (id),
    filter_send_batch_id bigint not null unique references call_filter_send_batch (id),
    batch_order integer not null,
    totalnum integer not null,
    task_id varchar(64),
    creator varchar(64) not null,
    createtime timestamptz not null default now(),
    runbegintime timestamptz,
    runendtime timestamptz,
    send_fromflag smallint not null default 0,
    send_recvflag smallint not null default 0,
    send_begintime timestamptz,
    send_recvtime timestamptz,
    send_res_suminfo text,
    query_fromflag smallint not null default 0,
    query_recvflag smallint not null default 0,
    query_begintime timestamptz,
    query_recvtime timestamptz,
    query_res_suminfo text,
    accepted integer,
    rejected integer,
    vendor_status varchar(16),
    message text
);
create index if not exists call_filter_send_batch_log_task_idx on call_filter_send_batch_log (filter_task_id);
-- A batch may need several vendor tasks (a calling window closed, a re-dial): `attempt` numbers the current
-- one. `holds_slot` is true from the moment a vendor task is asked for until it is seen to end: the rows
-- holding a slot are the pipeline's unfinished vendor tasks, kept under the vendor's cap.
alter table call_filter_send_batch_log add column if not exists attempt smallint not null default 1;
alter table call_filter_send_batch_log add column if not exists holds_slot boolean not null default false;
-- Since when the batch waits for a slot (null when it does not): waiters of a task go in this order.
alter table call_filter_send_batch_log add column if not exists slot_wait_since timestamptz;
create index if not exists call_filter_send_batch_log_slot_idx on call_filter_send_batch_log (id) where holds_slot;

-- Every case_tel row sent in a batch; rows sharing a number share its record_id (the vendor nid).
create table if not exists call_filter_send_detail (
    id bigserial primary key,
    filter_send_batch_id bigint not null references call_filter_send_batch (id),
    telid bigint not null references case_tel (telid),
    telno varchar(32) not null,
    phone varchar(32) not null,
    call_info varchar(64),
    record_id varchar(64) not null,
    creator varchar(64) not null,
    createtime timestamptz not null default now()
);
create index if not exists call_filter_send_detail_batch_record_idx
    on call_filter_send_detail (filter_send_batch_id, record_id);
create index if not exists call_filter_send_detail_telid_idx on call_filter_send_detail (telid);

-- The vendor's per-number results; a rerun replaces a batch's rows.
create table if not exists call_filter_send_queryres (
    id bigserial primary key,
    filter_send_batch_id bigint not null references call_filter_send_batch (id),
    nid varchar(64) not null,
    phone varchar(32) not null,
    call_status varchar(32) not null,
    billsec integer,
    call_start_time timestamptz,
    answer_time timestamptz,
    call_end_time timestamptz,
    wait_time integer,
    uniqueid varchar(64),
    fail_call_times integer,
    success_call_times integer,
    ivr_key varchar(16),
    agent varchar(64),
    agent_billsec integer,
    agent_answer_time timestamptz,
    agent_end_time timestamptz,
    hangup_cause integer,
    sip_code integer,
    createtime timestamptz not null default now(),
    unique (filter_send_batch_id, nid)
);

-- The data dictionary and the verdict rule table (dict_type 'verdict_rule': call_status -> verdict).
create table if not exists call_filter_dict (
    dict_type varchar(32) not null,
    code varchar(32) not null,
    name varchar(64) not null,
    remark text,
    primary key (dict_type, code)
);

-- Seeded once; an operator's later edits (e.g. a changed verdict rule) are kept.
insert into call_filter_dict (dict_type, code, name, remark) values
    ('task_status', '0', 'registered', 'waiting for a call_filter run'),
    ('task_status', '1', 'running', 'a call_filter run is working on it'),
    ('task_status', '2', 'finished', 'verdicts applied'),
    ('task_status', '3', 'failed', 'a step failed; clear the failed Airflow task to continue'),
    ('task_status', '4', 'finished with errors', 'some batches failed (named in message); clear a failed query to re-dial its batch'),
    ('task_step', '0', 'none', 'not started'),
    ('task_step', '1', 'registered', 'totalnum counted'),
    ('task_step', '2', 'planned', 'batches, request files and xlsx written'),
    ('task_step', '3', 'sending', 'batches being sent and queried'),
    ('task_step', '4', 'verdicts applied', 'case_tel updated'),
    ('task_step', '5', 'finished', 'summary written'),
    ('batch_status', '0', 'planned', 'request file written, not sent'),
    ('batch_status', '1', 'sent', 'vendor task created'),
    ('batch_status', '2', 'stored', 'vendor results stored'),
    ('batch_status', '3', 'failed', 'vendor task failed, was cancelled or timed out'),
    ('vendor_end', 'TIMEOUT', 'timed out', 'did not end within CALLFILTER_QUERY_TIMEOUT; cancelled'),
    ('vendor_end', 'WINDOW_CLOSED', 'window closed', 'cancelled when calling hours ended; the rest goes out in the next window'),
    ('send_flag', '0', 'not yet', 'fromflag: no request made; recvflag: no answer yet'),
    ('send_flag', '1', 'done', 'fromflag: request made; recvflag: answered with success'),
    ('send_flag', '-1', 'failed', 'recvflag: answered with an error or not at all'),
    ('query_flag', '0', 'not yet', 'fromflag: no request made; recvflag: no answer yet'),
    ('query_flag', '1', 'done', 'fromflag: request made; recvflag: results stored'),
    ('query_flag', '-1', 'failed', 'recvflag: vendor task failed, cancelled or timed out'),
    ('valid_status', '0', 'unknown', 'not screened, or no verdict yet'),
    ('valid_status', '1', 'valid', 'the number works'),
    ('valid_status', '2', 'invalid', 'the number does not work'),
    ('valid_reason', 'FORMAT', 'malformed number', 'invalid without dialing'),
    ('valid_reason', 'BLACKLIST', 'vendor blacklist', 'rejected at submission; stays unknown'),
    ('valid_reason', 'DNC', 'do not call', 'on the do-not-call list'),
    ('call_info', 'ACCEPTED', 'accepted', 'accepted by the vendor for dialing'),
    ('call_info', 'REJECTED:FORMAT', 'rejected: format', 'refused by the vendor as malformed'),
    ('call_info', 'REJECTED:BLACKLIST', 'rejected: blacklist', 'refused by the vendor blacklist'),
    ('call_info', 'REJECTED:DUPLICATE', 'rejected: duplicate', 'duplicate nid in the vendor task'),
    ('verdict_rule', 'ANSWERED', 'valid', 'answered'),
    ('verdict_rule', 'NO_ANSWER', 'valid', 'rang, not answered'),
    ('verdict_rule', 'BUSY', 'valid', 'busy'),
    ('verdict_rule', 'REJECTED', 'valid', 'callee rejected'),
    ('verdict_rule', 'VACANT', 'invalid', 'number does not exist'),
    ('verdict_rule', 'SUSPENDED', 'invalid', 'out of service, arrears'),
    ('verdict_rule', 'INVALID_FORMAT', 'invalid', 'malformed number'),
    ('verdict_rule', 'POWER_OFF', 'unknown', 'handset off'),
    ('verdict_rule', 'UNREACHABLE', 'unknown', 'not in service area'),
    ('verdict_rule', 'NETWORK_ERROR', 'unknown', 'carrier congestion or failure'),
    ('verdict_rule', 'CALL_LIMIT', 'unknown', 'vendor frequency or time-window limit')
on conflict (dict_type, code) do nothing;

-- The poller (call_filter_poller) claims status-0 rows oldest first; an operator may cancel a task (status 5).
create index if not exists call_filter_task_pending_idx on call_filter_task (createtime, id) where status = 0;
insert into call_filter_dict (dict_type, code, name, remark) values
    ('task_status', '5', 'cancelled', 'stopped by an operator (call_filter_cancel): no further batch is sent; what was dialed is stored and applied')
on conflict (dict_type, code) do nothing;
