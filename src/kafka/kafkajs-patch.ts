/**
 * A fix to one internal function of kafkajs 2.2.4, applied before kafkajs loads.
 *
 * kafkajs groups the messages of every send by partition with `[...current, message]` inside a
 * reduce: quadratic in the messages per partition of one send (upstream: tulios/kafkajs#1576, open;
 * kafkajs has had no release since 2023). A 2,000-row batch spends milliseconds there, and the
 * backlog-drain benchmark spent ~6 % of the streamer's CPU in it, plus the garbage it leaves.
 * This puts a linear function with the same contract in that module's place in the require cache:
 * `{ [partition]: the messages of that partition, in order }`, `{}` without partition metadata.
 *
 * It works only if it runs before kafkajs is first loaded, so it must be the FIRST import of every
 * module that imports kafkajs (ES modules run their imports in order). `kafkajsPatch.active` says
 * whether it took; a unit test checks it, and that both functions group alike.
 */
import { createRequire } from 'node:module';

interface GroupArgs<M> {
  topic: string;
  partitionMetadata: unknown[];
  messages: M[];
  partitioner: (args: { topic: string; partitionMetadata: unknown[]; message: M }) => number;
}
type Group = <M>(args: GroupArgs<M>) => Record<number, M[]>;

export function groupMessagesPerPartition<M>({ topic, partitionMetadata, messages, partitioner }: GroupArgs<M>): Record<number, M[]> {
  if (partitionMetadata.length === 0) return {};
  const out: Record<number, M[]> = {};
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    (out[partition] ??= []).push(message);
  }
  return out;
}

const require = createRequire(import.meta.url);
const target = require.resolve('kafkajs/src/producer/groupMessagesPerPartition.js');
const user = require.resolve('kafkajs/src/producer/sendMessages.js');
const alreadyLoaded = require.cache[user] !== undefined;
const original = require(target) as Group;
const cached = require.cache[target];
if (cached && !alreadyLoaded) cached.exports = groupMessagesPerPartition;

export const kafkajsPatch = {
  /** False when kafkajs was loaded before this module: it then runs its own version. */
  active: !alreadyLoaded && cached !== undefined,
  /** kafkajs's own function, for the test that compares the two. */
  original,
};
