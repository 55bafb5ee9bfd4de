-- Plan a filter task's batches in one transaction, set-based: nothing passes through Python.
-- The numbers to screen, normalised: spaces, dashes, dots and brackets stripped (a leading + kept).
create temp table plan_numbers on commit drop as
select telid, telno, regexp_replace(telno, '[[:space:]().\[\]-]', '', 'g') as phone
from case_tel
where batchid = %(batchid)s and valid_status <> %(verdict_valid)s;

-- Each distinct dialable number once, in order of its first row; its nid is that row's telid.
create temp table plan_phones on commit drop as
select phone, min(telid) as nid, row_number() over (order by min(telid)) as seq
from plan_numbers
where phone ~ '^\+?[0-9]{6,20}$'
group by phone;
