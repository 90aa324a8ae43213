-- The application's write, as pgbench runs it (bench/run.mjs part c): one single-row INSERT per
-- transaction into user_login, with or without the streamer's triggers.
\set n random(1, 1000000000)
INSERT INTO user_login (username, event_type, event_time) VALUES ('user_' || :n, 'login', now());
