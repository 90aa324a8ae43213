/**
 * Cuts `items` into runs, in order, whose sizes add up to at most `budget`; an item larger than
 * the budget goes alone. One rule for Kafka sends, dead letters and ClickHouse key lists.
 */
export function chunkBy<T>(items: readonly T[], budget: number, sizeOf: (item: T) => number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const item of items) {
    const s = sizeOf(item);
    if (current.length > 0 && size + s > budget) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += s;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
