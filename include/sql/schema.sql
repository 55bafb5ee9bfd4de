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
-- Re-screening: how many filter tasks planned to dial a row's number, and when the last one did.
alter table case_tel add column if not exists screen_attempts smallint not null default 0;
alter table case_tel add column if not exists last_screened_at timestamptz;

-- A number as it is dialed: full-width digits and signs (Chinese data entry) read as ASCII; spaces, dashes,
-- dots and brackets stripped (a leading + kept); a mainland mobile written with +86, 0086 or 86 in front is
-- the bare 11-digit number. Planning and the do-not-call list compare numbers in this form.
create or replace function callfilter_phone(telno text) returns text
language sql immutable strict parallel safe
as $$
    select regexp_replace(
        regexp_replace(
            translate(telno, '０１２３４５６７８９＋－（）．［］　', '0123456789+-().[] '),
            '[[:space:]().\[\]-]', '', 'g'),
        '^(\+86|0086|86)(1[3-9][0-9]{9})$', '\2')
$$;

-- Do-not-call: numbers on it (in any written form) are never sent; their rows stay unknown with reason DNC.
create table if not exists call_filter_dnc (
    telno varchar(32) primary key,
    reason text,
    createtime timestamptz not null default now()
);
create index if not exists call_filter_dnc_phone_idx on call_filter_dnc (callfilter_phone(telno));

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
-- not valid: rows already there are not checked.
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
-- When the slot was taken: a slot held with no vendor task for long belongs to a send that died.
alter table call_filter_send_batch_log add column if not exists slot_since timestamptz;
-- The vendor's create answers as they came (a JSON array), kept before they are read.
alter table call_filter_send_batch_log add column if not exists send_answer jsonb;
create index if not exists call_filter_send_batch_log_slot_idx on call_filter_send_batch_log (id) where holds_slot;

-- Every case_tel row sent in a batch; rows sharing a number share its record_id (the vendor nid). telid names
-- a case_tel row without a foreign key: case_tel is the business system's, which may delete or archive its
-- rows (the evidence stays here), and a plan's INSERT would pay a key check on it for every row.
create table if not exists call_filter_send_detail (
    id bigserial primary key,
    filter_send_batch_id bigint not null,
    telid bigint not null,
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
-- A database made before has the foreign key: dropped.
alter table call_filter_send_detail drop constraint if exists call_filter_send_detail_telid_fkey;

-- The vendor's per-number results; a rerun replaces a batch's rows.
create table if not exists call_filter_send_queryres (
    id bigserial primary key,
    filter_send_batch_id bigint not null,
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

-- Detail and result rows name their batch without a foreign key: a key is checked row by row, and those checks
-- were more than half the database time of a plan's detail INSERT and of a store's 1000-row COPY. The same
-- rule is kept once per statement: the batches new rows name must exist, and stay locked against deletion
-- (FOR KEY SHARE, as a foreign key locks them) until the transaction ends; a row's batch never changes; a
-- batch that has detail or result rows is not deleted.
create or replace function callfilter_batches_exist() returns trigger
language plpgsql as $$
declare
    named bigint;
    locked bigint;
    missing bigint;
begin
    select count(distinct filter_send_batch_id) into named from added;
    perform from call_filter_send_batch b where b.id in (select filter_send_batch_id from added) for key share;
    get diagnostics locked = row_count;
    if locked < named then
        select a.filter_send_batch_id into missing from added a
        where not exists (select from call_filter_send_batch b where b.id = a.filter_send_batch_id) limit 1;
        raise foreign_key_violation using
            message = format('insert into %I names batch %s, which does not exist', tg_table_name, missing);
    end if;
    return null;
end $$;

create or replace function callfilter_batch_kept() returns trigger
language plpgsql as $$
begin
    raise foreign_key_violation using
        message = format('%I.%I never changes (row %s)', tg_table_name, tg_argv[0], old.id);
end $$;

create or replace function callfilter_batches_unused() returns trigger
language plpgsql as $$
declare
    used bigint;
begin
    select r.id into used from removed r
    where exists (select from call_filter_send_detail d where d.filter_send_batch_id = r.id)
       or exists (select from call_filter_send_queryres q where q.filter_send_batch_id = r.id)
    limit 1;
    if used is not null then
        raise foreign_key_violation using
            message = format('batch %s has detail or result rows: it cannot be deleted', used);
    end if;
    return null;
end $$;

-- A database made before has the foreign keys: dropped, their rule kept by these triggers.
alter table call_filter_send_detail drop constraint if exists call_filter_send_detail_filter_send_batch_id_fkey;
alter table call_filter_send_queryres
    drop constraint if exists call_filter_send_queryres_filter_send_batch_id_fkey;
create or replace trigger call_filter_send_detail_batch_exists
    after insert on call_filter_send_detail referencing new table as added
    for each statement execute function callfilter_batches_exist();
create or replace trigger call_filter_send_queryres_batch_exists
    after insert on call_filter_send_queryres referencing new table as added
    for each statement execute function callfilter_batches_exist();
create or replace trigger call_filter_send_detail_batch_kept
    before update of filter_send_batch_id on call_filter_send_detail
    for each row when (old.filter_send_batch_id is distinct from new.filter_send_batch_id)
    execute function callfilter_batch_kept('filter_send_batch_id');
create or replace trigger call_filter_send_queryres_batch_kept
    before update of filter_send_batch_id on call_filter_send_queryres
    for each row when (old.filter_send_batch_id is distinct from new.filter_send_batch_id)
    execute function callfilter_batch_kept('filter_send_batch_id');
create or replace trigger call_filter_send_batch_unused
    after delete on call_filter_send_batch referencing old table as removed
    for each statement execute function callfilter_batches_unused();
create or replace trigger call_filter_send_batch_id_kept
    before update of id on call_filter_send_batch
    for each row when (old.id is distinct from new.id)
    execute function callfilter_batch_kept('id');

-- Result records that could not be stored (a number not sent, another phone, a field that breaks the
-- contract), with why; their numbers keep their verdict. A rerun replaces a batch's rows.
create table if not exists call_filter_send_quarantine (
    id bigserial primary key,
    filter_send_batch_id bigint not null references call_filter_send_batch (id),
    attempt smallint not null,
    nid text,
    record jsonb not null,
    reason text not null,
    createtime timestamptz not null default now()
);
create index if not exists call_filter_send_quarantine_batch_idx on call_filter_send_quarantine (filter_send_batch_id);

-- The data dictionary and the verdict rule table (dict_type 'verdict_rule': call_status -> verdict).
create table if not exists call_filter_dict (
    dict_type varchar(32) not null,
    code varchar(32) not null,
    name varchar(64) not null,
    remark text,
    primary key (dict_type, code)
);
-- Each code's Chinese label, for the people who read the dictionary and the summary xlsx. A verdict rule's
-- verdict is a valid_status code: relabelling a status (name or name_zh) changes no verdict.
alter table call_filter_dict add column if not exists name_zh varchar(64);
alter table call_filter_dict add column if not exists verdict smallint;

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
    ('call_info', 'SENT', 'sent, not confirmed', 'sent under an answer that did not say it was accepted; its result decides'),
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

-- Each batch of a task as it stands, readable while the task runs (a batch not sent yet has no log: its
-- flags are null). send_seconds runs from the send's first try to the vendor's answer, query_seconds from
-- the query's first status request to its results stored (or failed); a running one counts up to now.
-- numbers_screened: the batch's numbers once its results are stored, else those with a result so far.
-- moved_at: the latest time anything of the batch was recorded.
create or replace view call_filter_batch_progress as
select b.filter_task_id, b.id as filter_send_batch_id, b.batch_order, b.totalnum, b.status,
       s.name as status_name, l.attempt, l.task_id,
       l.send_fromflag, l.send_recvflag, l.send_begintime, l.send_recvtime,
       round(extract(epoch from coalesce(l.send_recvtime, now()) - l.send_begintime), 3) as send_seconds,
       l.query_fromflag, l.query_recvflag, l.query_begintime, l.query_recvtime,
       round(extract(epoch from coalesce(l.query_recvtime, now()) - l.query_begintime), 3) as query_seconds,
       l.accepted, l.rejected, l.vendor_status, l.holds_slot, l.slot_wait_since,
       case when s.name = 'stored' then b.totalnum
            else (select count(*) from call_filter_send_queryres q where q.filter_send_batch_id = b.id) end
           as numbers_screened,
       l.send_res_suminfo, l.query_res_suminfo, l.message,
       greatest(b.createtime, l.createtime, l.send_begintime, l.send_recvtime, l.query_begintime,
                l.query_recvtime, l.slot_wait_since, l.runendtime) as moved_at
from call_filter_send_batch b
left join call_filter_send_batch_log l on l.filter_send_batch_id = b.id
left join call_filter_dict s on s.dict_type = 'batch_status' and s.code = b.status::text;

-- Screening exhausted: the reason of a number still unknown after CALLFILTER_RESCREEN_MAX screenings.
insert into call_filter_dict (dict_type, code, name, remark) values
    ('valid_reason', 'UNREACHABLE_MAX', 'screening exhausted', 'still unknown after the most screenings allowed; left alone')
on conflict (dict_type, code) do nothing;

-- A rule's verdict code, from its verdict name where it has none yet (rules seeded or edited before the column
-- existed); an operator changes a rule with `set verdict = 0`.
update call_filter_dict r set verdict = s.code::smallint
from call_filter_dict s
where r.dict_type = 'verdict_rule' and r.verdict is null and s.dict_type = 'valid_status' and s.name = r.name;
do $$ begin
    if not exists (select from pg_constraint where conrelid = 'call_filter_dict'::regclass
                   and conname = 'call_filter_dict_verdict_check') then
        alter table call_filter_dict add constraint call_filter_dict_verdict_check check (
            dict_type <> 'verdict_rule' or verdict in (0, 1, 2)
        ); end if; end
$$;

-- Chinese labels, set where a row has none: an operator's own label is kept.
update call_filter_dict d set name_zh = v.name_zh
from (values
    ('task_status', '0', '已登记'),
    ('task_status', '1', '运行中'),
    ('task_status', '2', '已完成'),
    ('task_status', '3', '失败'),
    ('task_status', '4', '完成（有错误）'),
    ('task_status', '5', '已取消'),
    ('task_step', '0', '未开始'),
    ('task_step', '1', '已登记'),
    ('task_step', '2', '已分批'),
    ('task_step', '3', '发送中'),
    ('task_step', '4', '结果已回写'),
    ('task_step', '5', '已完成'),
    ('batch_status', '0', '已分批'),
    ('batch_status', '1', '已发送'),
    ('batch_status', '2', '结果已入库'),
    ('batch_status', '3', '失败'),
    ('vendor_end', 'TIMEOUT', '超时'),
    ('vendor_end', 'WINDOW_CLOSED', '呼叫时段结束'),
    ('send_flag', '0', '未进行'),
    ('send_flag', '1', '成功'),
    ('send_flag', '-1', '失败'),
    ('query_flag', '0', '未进行'),
    ('query_flag', '1', '成功'),
    ('query_flag', '-1', '失败'),
    ('valid_status', '0', '未知'),
    ('valid_status', '1', '有效'),
    ('valid_status', '2', '无效'),
    ('valid_reason', 'FORMAT', '号码格式错误'),
    ('valid_reason', 'BLACKLIST', '供应商黑名单'),
    ('valid_reason', 'DNC', '禁止呼叫'),
    ('valid_reason', 'UNREACHABLE_MAX', '多次检测仍无法确定'),
    ('call_info', 'ACCEPTED', '已受理'),
    ('call_info', 'REJECTED:FORMAT', '拒绝：格式错误'),
    ('call_info', 'REJECTED:BLACKLIST', '拒绝：黑名单'),
    ('call_info', 'REJECTED:DUPLICATE', '拒绝：重复号码'),
    ('call_info', 'SENT', '已发送（未确认）'),
    ('verdict_rule', 'ANSWERED', '已接听'),
    ('verdict_rule', 'NO_ANSWER', '无人接听'),
    ('verdict_rule', 'BUSY', '占线'),
    ('verdict_rule', 'REJECTED', '拒接'),
    ('verdict_rule', 'VACANT', '空号'),
    ('verdict_rule', 'SUSPENDED', '停机'),
    ('verdict_rule', 'INVALID_FORMAT', '号码格式错误'),
    ('verdict_rule', 'POWER_OFF', '关机'),
    ('verdict_rule', 'UNREACHABLE', '无法接通'),
    ('verdict_rule', 'NETWORK_ERROR', '网络错误'),
    ('verdict_rule', 'CALL_LIMIT', '呼叫受限')
) as v (dict_type, code, name_zh)
where d.dict_type = v.dict_type and d.code = v.code and d.name_zh is null;
