select count(*) as total,
       count(*) filter (where valid_status <> 1) as to_screen
from case_tel where batchid = %(batchid)s
