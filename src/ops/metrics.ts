/**
 * Prometheus metrics of this process (prom-client), served on /metrics by src/ops/http.ts.
 * One registry per process: the CLI runs one producer and/or one consumer. Counters of rows carry
 * the PostgreSQL table (`table="public.user_login"`). deploy/ holds a Grafana dashboard and alert
 * rules built on exactly these names (test/unit/deploy.test.ts checks them against a live scrape).
 */
import client from 'prom-client';

export const registry = new client.Registry();
// Node's and the process's own figures as streamer_process_* and streamer_nodejs_* (prom-client's
// names behind the prefix; before issue 13 the prefix doubled them: streamer_process_process_*).
client.collectDefaultMetrics({ register: registry, prefix: 'streamer_' });

/** streamer_claim_to_clickhouse_seconds's buckets. */
export const CLAIM_TO_CLICKHOUSE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const rowBuckets = [1, 10, 50, 100, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000];

/**
 * A histogram of one series (no labels) that takes a value with a count. The consumer observes the
 * latency of every message it stores, and the messages of one producer batch share one claim time:
 * one call per run of them. prom-client's observe() costs ~0.2 µs per call — 4 % of the consumer's
 * CPU, called per message (issue 14). Registered and exposed like prom-client's Histogram, with
 * the same lines (test/unit/metrics-histogram.test.ts compares them).
 */
export class CountingHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private counts: number[];
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    register: client.Registry,
  ) {
    this.counts = buckets.map(() => 0);
    register.registerMetric(this as unknown as client.Metric);
  }

  /** `times` observations of `value`. */
  observe(value: number, times = 1): void {
    let i = 0;
    while (i < this.buckets.length && value > (this.buckets[i] as number)) i++;
    if (i < this.counts.length) (this.counts[i] as number) += times;
    this.sum += value * times;
    this.count += times;
  }

  reset(): void {
    this.counts = this.buckets.map(() => 0);
    this.sum = 0;
    this.count = 0;
  }

  /** What prom-client's registry reads of a metric (Histogram.get()'s shape). */
  get(): { name: string; help: string; type: string; aggregator: string; values: Array<{ labels: Record<string, number | string>; value: number; metricName: string }> } {
    let cumulative = 0;
    const values: Array<{ labels: Record<string, number | string>; value: number; metricName: string }> = this.buckets.map((le, i) => ({ labels: { le }, value: (cumulative += this.counts[i] as number), metricName: `${this.name}_bucket` }));
    values.push({ labels: { le: '+Inf' }, value: this.count, metricName: `${this.name}_bucket` });
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: [...values, { labels: {}, value: this.sum, metricName: `${this.name}_sum` }, { labels: {}, value: this.count, metricName: `${this.name}_count` }],
    };
  }
}

export const metrics = {
  rowsPublished: new client.Counter({ name: 'streamer_rows_published_total', help: 'Changes published to Kafka and marked sent, per table', labelNames: ['table'], registers: [registry] }),
  rowsFailed: new client.Counter({ name: 'streamer_rows_failed_total', help: 'Rows Kafka refused for good, recorded in streamer_failed_rows, per table', labelNames: ['table'], registers: [registry] }),
  producerBatchRows: new client.Histogram({ name: 'streamer_producer_batch_rows', help: 'Rows per producer batch (claim → publish → mark)', buckets: rowBuckets, registers: [registry] }),
  rowsInserted: new client.Counter({ name: 'streamer_rows_inserted_total', help: 'Rows (versions and deletes) inserted into ClickHouse, per table', labelNames: ['table'], registers: [registry] }),
  rowsDuplicate: new client.Counter({
    name: 'streamer_rows_duplicate_skipped_total',
    help: 'Messages not inserted because ClickHouse already held that version of the key or a newer one, per table',
    labelNames: ['table'],
    registers: [registry],
  }),
  deadLetters: new client.Counter({ name: 'streamer_dead_letters_total', help: 'Messages sent to the dead-letter topic, per table', labelNames: ['table'], registers: [registry] }),
  consumerBatchRows: new client.Histogram({ name: 'streamer_consumer_batch_rows', help: 'Rows per ClickHouse insert', buckets: rowBuckets, registers: [registry] }),
  // The Kafka message timestamp is the moment the producer claimed the row, normally a few ms
  // after the INSERT's commit woke it (NOTIFY); the benchmark measures the full INSERT → ClickHouse
  // latency with the insert time itself.
  claimToClickhouseSeconds: new CountingHistogram(
    'streamer_claim_to_clickhouse_seconds',
    'From the producer claiming a row in PostgreSQL to ClickHouse acknowledging its insert',
    CLAIM_TO_CLICKHOUSE_BUCKETS,
    registry,
  ),
};

/** `streamer_info{command, version}` 1: which command a scraped process runs. */
export function registerInfo(command: string, version: string): void {
  const name = 'streamer_info';
  if (registry.getSingleMetric(name)) registry.removeSingleMetric(name);
  new client.Gauge({ name, help: 'Always 1; the labels say which streamer command and version this process runs', labelNames: ['command', 'version'], registers: [registry] }).set({ command, version }, 1);
}

/** Gauges whose value is read at scrape time (pending rows, consumer lag). */
export function registerGauge(name: string, help: string, read: () => Promise<number | Array<{ labels: Record<string, string>; value: number }>>, labelNames: string[] = []): void {
  if (registry.getSingleMetric(name)) registry.removeSingleMetric(name);
  new client.Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    async collect() {
      try {
        const v = await read();
        this.reset();
        if (typeof v === 'number') this.set(v);
        else for (const { labels, value } of v) this.set(labels, value);
      } catch {
        // A service is down: the gauge keeps no value rather than failing the whole scrape.
        this.reset();
      }
    },
  });
}
