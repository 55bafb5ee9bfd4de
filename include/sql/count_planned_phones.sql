select count(*) as phones from plan_phones
