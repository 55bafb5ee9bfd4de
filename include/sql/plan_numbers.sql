-- Plan a filter task's batches in one transaction, set-based: nothing passes through Python.
-- The rows to screen (not valid, or valid and older than the valid re-screen age when one is set), each with
-- its number in normal form (callfilter_phone: full-width digits, separators, +86/0086/86) and the calling
-- rule that decides it: FORMAT (malformed: invalid at once), DNC (on the do-not-call list: never sent),
-- EXHAUSTED (unknown after the most screenings allowed), WAIT (unknown, screened less than the re-screen delay
-- ago: left as it is for now), DIAL.
create temp table plan_numbers on commit drop as
select telid, telno, phone,
       case when phone !~ '^\+?[0-9]{6,20}$' then 'FORMAT'
            when phone in (select callfilter_phone(d.telno) from call_filter_dnc d) then 'DNC'
            when valid_status = %(verdict_unknown)s and screen_attempts >= %(rescreen_max)s then 'EXHAUSTED'
            when valid_status = %(verdict_unknown)s and screen_attempts > 0
                 and last_screened_at > now() - make_interval(secs => %(rescreen_delay)s::float8) then 'WAIT'
            else 'DIAL' end as rule
from (
    select telid, telno, coalesce(callfilter_phone(telno), '') as phone, valid_status, screen_attempts,
           last_screened_at
    from case_tel
    where batchid = %(batchid)s
      and (valid_status <> %(verdict_valid)s
           or coalesce(valid_checked_at, '-infinity')
              < now() - make_interval(secs => %(valid_rescreen_age)s::float8))
) as numbers;

-- Each distinct number to dial once, in order of its first row; its nid is that row's telid.
create temp table plan_phones on commit drop as
select phone, min(telid) as nid, row_number() over (order by min(telid)) as seq
from plan_numbers
where rule = 'DIAL'
group by phone;
