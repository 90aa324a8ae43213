-- Rows Kafka can never accept (for example larger than the broker's max.message.bytes) are
-- recorded here with the error, so they stop blocking the rows behind them and an operator sees
-- them (`streamer status`). Their sent_to_kafka flag stays FALSE: the flag only ever means "in
-- Kafka". To retry such a row after fixing it, delete it from this table.
CREATE TABLE IF NOT EXISTS streamer_failed_rows (
    id BIGINT PRIMARY KEY,
    error TEXT NOT NULL,
    failed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts INTEGER NOT NULL DEFAULT 1
);
