-- Every message the consumer dead-letters, besides the copy in the dead-letter topic: where it
-- came from, its key and why (src/consumer.ts). `streamer verify` tells a row that was
-- dead-lettered from one that was lost, and `streamer status` counts them; it is also the place to
-- look: SELECT * FROM streamer_dead_letters ORDER BY dead_lettered_at DESC.
-- A message dead-lettered twice (redelivered before its offset was committed) is one row after a
-- merge: ReplacingMergeTree by its Kafka position.
CREATE TABLE IF NOT EXISTS {{database}}.streamer_dead_letters
(
    topic            String,
    partition        UInt32,
    offset           UInt64,
    key              String,
    reason           String,
    dead_lettered_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (topic, partition, offset);
