-- The seed's table and its ten rows, as the original README gives them (../shared/seed/): what
-- `npm run demo` loads and what the tests adopt. Not a migration.
CREATE TABLE IF NOT EXISTS user_login (
    id SERIAL PRIMARY KEY,              -- unique, auto-incremented
    username TEXT,                      -- user name
    event_type TEXT,                    -- login, register, purchase, ...
    event_time TIMESTAMP,               -- when it happened
    sent_to_kafka BOOLEAN DEFAULT FALSE -- handed to Kafka yet? (FALSE by default)
);

INSERT INTO user_login (username, event_type, event_time) VALUES
('john_doe', 'login', '2023-10-26 10:00:00'),
('jane_smith', 'register', '2023-10-26 10:15:00'),
('john_doe', 'purchase', '2023-10-26 10:30:00'),
('bob_builder', 'login', '2023-10-26 11:00:00'),
('alice_wonderland', 'register', '2023-10-26 11:15:00'),
('bob_builder', 'purchase', '2023-10-26 11:30:00'),
('john_doe', 'logout', '2023-10-26 12:00:00'),
('jane_smith', 'login', '2023-10-26 12:15:00');

-- fresher rows, not yet sent to Kafka
INSERT INTO user_login (username, event_type, event_time) VALUES
('john_doe', 'login', '2024-11-15 14:00:00'),
('jane_smith', 'register', '2024-11-15 14:15:00');
