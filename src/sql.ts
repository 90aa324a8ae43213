/**
 * Every runtime query of the producer side, as named constants. Values always travel as
 * parameters; nothing here is built from data.
 */

/** The channel the triggers of sql/postgres/0004 notify. */
export const NOTIFY_CHANNEL = 'streamer_user_login';

/**
 * Claims up to $1 pending rows, oldest first, locking them so that a concurrent producer skips
 * them (SKIP LOCKED) instead of publishing them too. The predicate matches the partial index of
 * sql/postgres/0002. `event_time` is formatted by PostgreSQL itself, so its wall-clock digits and
 * microseconds survive whatever the process's time zone (node-postgres would otherwise turn a
 * TIMESTAMP into a local-time JS Date and drop the microseconds). Values PostgreSQL cannot print
 * in that shape (infinity, BC dates) travel as its own text, and the consumer dead-letters them.
 */
export const CLAIM_BATCH = `
SELECT u.id,
       u.username,
       u.event_type,
       CASE
         WHEN u.event_time IS NULL THEN NULL
         WHEN isfinite(u.event_time) AND u.event_time >= '0001-01-01' AND u.event_time < '10000-01-01'
           THEN to_char(u.event_time, 'YYYY-MM-DD HH24:MI:SS.US')
         ELSE u.event_time::text
       END AS event_time
  FROM user_login u
 WHERE u.sent_to_kafka IS NOT TRUE
   AND NOT EXISTS (SELECT 1 FROM streamer_failed_rows f WHERE f.id = u.id)
 ORDER BY u.id
 LIMIT $1
   FOR UPDATE OF u SKIP LOCKED`;

/** Marks exactly the published rows of the batch ($1: their ids). */
export const MARK_SENT = `UPDATE user_login SET sent_to_kafka = TRUE WHERE id = ANY($1::bigint[])`;

/** Records rows Kafka refused for good ($1 ids, $2 errors). */
export const RECORD_FAILED = `
INSERT INTO streamer_failed_rows (id, error)
SELECT * FROM unnest($1::bigint[], $2::text[])
ON CONFLICT (id) DO UPDATE
   SET error = EXCLUDED.error, failed_at = now(), attempts = streamer_failed_rows.attempts + 1`;

/** Pending rows (not sent, not failed): the progress bar's total and `status`. */
export const COUNT_PENDING = `
SELECT count(*)::bigint AS n
  FROM user_login u
 WHERE u.sent_to_kafka IS NOT TRUE
   AND NOT EXISTS (SELECT 1 FROM streamer_failed_rows f WHERE f.id = u.id)`;

export const COUNT_FAILED = `SELECT count(*)::bigint AS n FROM streamer_failed_rows`;
