/**
 * A consumer in the default group (src/config/group.ts) that has no committed offset for a
 * partition starts where an earlier default group of the same ClickHouse tables got to, instead of
 * at the topic's beginning: the former default `streamer-clickhouse` (an upgrade), or the default
 * name this database had for another set of topics (a table added or removed). The group's own
 * commits always win; a partition only one earlier group committed gets that offset, one several
 * committed gets the furthest (each stored everything below its offset in these tables).
 *
 * Runs before the consumer joins; kafkajs's setOffsets refuses a group with running members, which
 * then means another member of this group joined first (and took over before it joined).
 */
import type { Admin } from 'kafkajs';
import { describeError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { isEarlierDefaultGroup, LEGACY_GROUP_ID } from '../config/group.js';

export type OffsetsAdmin = Pick<Admin, 'listGroups' | 'fetchOffsets' | 'setOffsets'>;

export interface TakenOver {
  topic: string;
  /** The earlier group(s) whose offsets were taken. */
  from: string[];
  partitions: Array<{ partition: number; offset: string }>;
}

export interface TakeOverResult {
  takenOver: TakenOver[];
  /**
   * Topics this group reads from their beginning although other streamer groups — of another
   * ClickHouse server or database, by their names — committed offsets for them.
   */
  othersWithOffsets: Array<{ topic: string; groups: string[] }>;
}

export async function takeOverEarlierOffsets(
  admin: OffsetsAdmin,
  target: { groupId: string; clickhouseUrl: string; database: string; topics: readonly string[] },
  log: Logger,
): Promise<TakeOverResult> {
  const result: TakeOverResult = { takenOver: [], othersWithOffsets: [] };
  const { groupId } = target;
  // Partitions of each topic this group has not committed.
  const need = new Map<string, Set<number>>();
  for (const { topic, partitions } of await admin.fetchOffsets({ groupId, topics: [...target.topics] })) {
    const missing = partitions.filter((p) => BigInt(p.offset) < 0n).map((p) => p.partition);
    if (missing.length > 0) need.set(topic, new Set(missing));
  }
  if (need.size === 0) return result;

  const streamerGroups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g !== groupId && (g === LEGACY_GROUP_ID || g.startsWith(`${LEGACY_GROUP_ID}.`)));
  // The former default last: on equal offsets a newer default name is the one reported.
  const earlier = streamerGroups
    .filter((g) => isEarlierDefaultGroup(g, groupId, target.clickhouseUrl, target.database))
    .sort((a, b) => Number(a === LEGACY_GROUP_ID) - Number(b === LEGACY_GROUP_ID) || a.localeCompare(b));
  const best = new Map<string, Map<number, { offset: bigint; group: string }>>();
  for (const group of earlier) {
    for (const { topic, partitions } of await admin.fetchOffsets({ groupId: group, topics: [...need.keys()] })) {
      const wanted = need.get(topic);
      for (const p of partitions) {
        const offset = BigInt(p.offset);
        if (offset < 0n || !wanted?.has(p.partition)) continue;
        const byPartition = best.get(topic) ?? new Map<number, { offset: bigint; group: string }>();
        const current = byPartition.get(p.partition);
        if (!current || offset > current.offset) byPartition.set(p.partition, { offset, group });
        best.set(topic, byPartition);
      }
    }
  }

  for (const [topic, byPartition] of best) {
    const partitions = [...byPartition].sort(([a], [b]) => a - b).map(([partition, v]) => ({ partition, offset: v.offset.toString() }));
    const from = [...new Set([...byPartition.values()].map((v) => v.group))].sort();
    try {
      await admin.setOffsets({ groupId, topic, partitions });
    } catch (err) {
      log.warn(
        { groupId, topic, err: describeError(err) },
        `could not take over the committed offsets of ${from.join(', ')} for topic ${topic} (another member of ${groupId} may have joined first, having done so)`,
      );
      continue;
    }
    result.takenOver.push({ topic, from, partitions });
    log.info(
      { groupId, topic, from, partitions },
      `consumer group ${groupId} had no committed offsets for topic ${topic}: it starts where ${from.join(' and ')} left off (an earlier default group name of these ClickHouse tables; see README "Consumer group")`,
    );
    for (const p of partitions) need.get(topic)?.delete(p.partition);
  }

  // Still from the beginning: say so when other streamer groups read those topics.
  const others = streamerGroups.filter((g) => !earlier.includes(g));
  const stillNeeded = [...need].filter(([, parts]) => parts.size > 0).map(([topic]) => topic);
  if (others.length > 0 && stillNeeded.length > 0) {
    const byTopic = new Map<string, string[]>();
    for (const group of others) {
      for (const { topic, partitions } of await admin.fetchOffsets({ groupId: group, topics: stillNeeded })) {
        if (partitions.some((p) => BigInt(p.offset) >= 0n)) byTopic.set(topic, [...(byTopic.get(topic) ?? []), group]);
      }
    }
    for (const [topic, groups] of byTopic) {
      result.othersWithOffsets.push({ topic, groups });
      log.warn(
        { groupId, topic, groups },
        `consumer group ${groupId} has no committed offsets for topic ${topic} and reads it from the beginning (nothing is stored twice, but it takes time); ${groups.join(', ')} also consumed it, for another ClickHouse server or database by their names — if one of them wrote these same tables (e.g. CLICKHOUSE_URL was spelled differently), stop this consumer and set KAFKA_GROUP_ID to it`,
      );
    }
  }
  return result;
}
