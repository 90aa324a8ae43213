/**
 * The consumer group's default name, derived from what the consumer writes — its topics, and the
 * ClickHouse server and database they go to — so that two pipelines (other topics, another
 * database, or the same topic fanned out into two ClickHouse servers) never share a group unless
 * KAFKA_GROUP_ID says so. Before this rule every consumer defaulted to LEGACY_GROUP_ID: two pipelines rebalanced each
 * other, and kafkajs's assigner could hand a member partitions of a topic it did not subscribe to.
 *
 *   streamer-clickhouse.<host:port>.<database>.<topic>[+<topic>…]
 *   streamer-clickhouse.<host:port>.<database>.<n>-topics-<sha256>
 *
 * host:port as CLICKHOUSE_URL writes it (lower case); topics sorted. The second form when the
 * first would be longer than MAX_READABLE (12 hex digits of the hash of the sorted list). Neither
 * a host name nor a port has ':' or '.' where the other form could, a database name has no '.' and
 * a topic name no '+', so one prefix names one server and database exactly.
 */
import { createHash } from 'node:crypto';

/** The default of every release up to this one; its committed offsets are taken over (src/kafka/group-offsets.ts). */
export const LEGACY_GROUP_ID = 'streamer-clickhouse';
const MAX_READABLE = 200;

/** Every default name for this server and database starts so (also one made for other topics). */
export function defaultGroupPrefix(clickhouseUrl: string, database: string): string {
  return `${LEGACY_GROUP_ID}.${new URL(clickhouseUrl).host.toLowerCase()}.${database}.`;
}

export function defaultGroupId(clickhouseUrl: string, database: string, topics: readonly string[]): string {
  const prefix = defaultGroupPrefix(clickhouseUrl, database);
  const sorted = [...new Set(topics)].sort();
  const readable = prefix + sorted.join('+');
  if (readable.length <= MAX_READABLE) return readable;
  const hash = createHash('sha256').update(sorted.join(',')).digest('hex').slice(0, 12);
  return `${prefix}${sorted.length}-topics-${hash}`;
}

/**
 * The groups whose committed offsets a consumer in the default group `groupId` may start from
 * when it has none of its own: the former default, and the default names of the same server and
 * database for another set of topics (the table list changed). Each of them stored a topic's
 * messages below its committed offset in the tables this consumer writes.
 */
export function isEarlierDefaultGroup(candidate: string, groupId: string, clickhouseUrl: string, database: string): boolean {
  return candidate !== groupId && (candidate === LEGACY_GROUP_ID || candidate.startsWith(defaultGroupPrefix(clickhouseUrl, database)));
}
