select count(*) as total,
       count(*) filter (where valid_status <> %(verdict_valid)s) as to_screen
from case_tel where batchid = %(batchid)s
