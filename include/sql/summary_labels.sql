-- The labels of the summary's codes: a verdict's is its valid_status label; a reason's is its valid_reason
-- label, else the verdict rule's of the same code (a call status).
select dict_type, code, name, name_zh
from call_filter_dict
where dict_type in ('valid_status', 'valid_reason', 'verdict_rule')
