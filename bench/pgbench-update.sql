-- The application's update, as pgbench runs it (bench/run.mjs part g): one single-row UPDATE per
-- transaction of user_login (100,000 rows), with or without the capture's triggers.
\set id random(1, 100000)
UPDATE user_login SET event_type = 'e' || :id, event_time = now() WHERE id = :id;
