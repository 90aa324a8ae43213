-- The table as the seed defines it. On a database that already has it (users adopt streamer on a
-- live table), nothing changes here and every row keeps its flag.
CREATE TABLE IF NOT EXISTS user_login (
    id SERIAL PRIMARY KEY,
    username TEXT,
    event_type TEXT,
    event_time TIMESTAMP,
    sent_to_kafka BOOLEAN DEFAULT FALSE
);
