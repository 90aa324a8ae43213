// deploy/: the Grafana dashboard, the Prometheus alert rules and scrape configuration parse, every
// PromQL expression in them is valid (Prometheus's own grammar, @prometheus-io/lezer-promql), and
// every metric and label they name is one a live `streamer run` exports on /metrics — after a row
// went through, so that every series exists.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ROOT, runCli, startCli } from '../support/cli.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { withPg } from '../support/pg.js';
import { waitFor } from '../support/wait.js';
import { freePort } from '../support/ports.js';
import { DEFAULT_HTTP_PORTS } from '../../src/config/config.js';

const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');

interface Service {
  command: string[];
  environment: Record<string, string>;
  ports?: string[];
  healthcheck: { test: string[] };
}

/** docker-compose.yml's healthcheck of `streamer`, run here as Docker would, against `port`. */
function composeHealthcheck(port: number): Promise<number | null> {
  const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> };
  const [kind, node, flag, script] = compose.services.streamer?.healthcheck.test as string[];
  expect([kind, node, flag]).toEqual(['CMD', 'node', '-e']);
  const child = spawn(process.execPath, ['-e', (script as string).replace('9464', String(port))], { stdio: 'ignore' });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: string };
  annotations: { summary: string; description: string };
}

const alerts = parseYaml(read('deploy/prometheus/alerts.yml')) as { groups: Array<{ name: string; rules: Rule[] }> };
const dashboard = JSON.parse(read('deploy/grafana/streamer-dashboard.json')) as {
  panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
  templating: { list: Array<{ definition: string }> };
};

/** Grafana's variables as Prometheus would receive them. */
const grafanaToPromql = (expr: string) => expr.replace(/\$__rate_interval|\$__range/g, '5m').replace(/\$job/g, '.*');

/** The metric names and label names an expression uses; throws on a syntax error. */
function names(expr: string): { metrics: string[]; labels: string[] } {
  const tree = parser.parse(expr);
  const metrics: string[] = [];
  const labels: string[] = [];
  const errors: number[] = [];
  tree.iterate({
    enter: (n) => {
      if (n.type.isError) errors.push(n.from);
      if (n.name === 'Identifier' && n.node.parent?.name === 'VectorSelector') metrics.push(expr.slice(n.from, n.to));
      if (n.name === 'LabelName') labels.push(expr.slice(n.from, n.to));
    },
  });
  if (errors.length > 0) throw new Error(`PromQL syntax error at ${errors[0]} in: ${expr}`);
  return { metrics, labels };
}

const ruleExprs = alerts.groups.flatMap((g) => g.rules.map((r) => r.expr));
const dashboardExprs = [
  ...dashboard.panels.flatMap((p) => p.targets.map((t) => grafanaToPromql(t.expr))),
  // label_values(streamer_info, job): the variable's query names a metric too
  ...dashboard.templating.list.map((v) => /^label_values\((\w+),/.exec(v.definition)?.[1] ?? v.definition),
];

describe('deploy/ files parse', () => {
  it('alerts.yml: rule groups with an alert name, a valid expression, a severity and a summary', () => {
    const rules = alerts.groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert)).toEqual(['StreamerDown', 'StreamerNotReady', 'StreamerConsumerLagGrowing', 'StreamerPendingGrowing', 'StreamerDeadLetters', 'StreamerRowsFailed']);
    for (const r of rules) {
      expect(r.labels.severity).toMatch(/^(critical|warning)$/);
      expect(r.annotations.summary.length).toBeGreaterThan(10);
      expect(() => names(r.expr)).not.toThrow();
    }
  });

  it('the dashboard: every panel has a valid query', () => {
    expect(dashboard.panels.length).toBeGreaterThanOrEqual(10);
    for (const p of dashboard.panels) {
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) expect(() => names(grafanaToPromql(t.expr)), p.title).not.toThrow();
    }
  });

  it('prometheus.yml loads alerts.yml and scrapes the run port', () => {
    const cfg = parseYaml(read('deploy/prometheus/prometheus.yml')) as { rule_files: string[]; scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }> };
    expect(cfg.rule_files).toEqual(['alerts.yml']);
    expect(cfg.scrape_configs[0]?.static_configs[0]?.targets).toEqual(['streamer:9464']);
  });

  it('docker-compose.yml: every streamer service listens on 0.0.0.0 and is health-checked on /readyz of its own port', () => {
    const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> };
    const streamers = Object.entries(compose.services).filter(([name]) => name.startsWith('streamer'));
    expect(streamers.map(([name]) => name)).toEqual(['streamer-migrate', 'streamer', 'streamer-producer', 'streamer-consumer']);
    for (const [name, svc] of streamers) {
      expect(svc.environment.HTTP_HOST, name).toBe('0.0.0.0');
      const command = svc.command[0] as string;
      if (command === 'migrate') continue;
      const port = DEFAULT_HTTP_PORTS[command as keyof typeof DEFAULT_HTTP_PORTS];
      expect(svc.ports, name).toEqual([`127.0.0.1:${port}:${port}`]);
      expect(svc.healthcheck.test.join(' '), name).toContain(`http://127.0.0.1:${port}/readyz`);
    }
    expect(read('Dockerfile')).toMatch(/^ENV HTTP_HOST=0\.0\.0\.0$/m);
  });

  it('a syntax error is caught (the check above can fail)', () => {
    expect(() => names('sum(rate(streamer_rows_published_total[5m])')).toThrow(/syntax error/);
  });
});

describe('deploy/ names only what the process exports', () => {
  let iso: Isolated;
  let run: ReturnType<typeof startCli> | undefined;
  let port: number;

  beforeAll(async () => {
    iso = await isolate();
    port = await freePort();
  });
  afterAll(async () => {
    if (run && run.child.exitCode === null) {
      run.child.kill('SIGTERM');
      await run.exited;
    }
    await iso?.cleanup();
  });

  it('every metric and label in the dashboard and the alerts is on /metrics of streamer run', async () => {
    expect((await runCli(['migrate'], iso.env)).code).toBe(0);
    await withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username, event_type, event_time) VALUES ('u', 'login', '2026-11-26 12:00:00')`));
    expect(await composeHealthcheck(port)).toBe(1); // nothing listens yet
    run = startCli(['run'], { ...iso.env, HTTP_PORT: String(port) });
    // After one row went through, the latency histogram and the lag have series too.
    const text = await waitFor('the row in the metrics', async () => {
      const t = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text().catch(() => '');
      return /^streamer_claim_to_clickhouse_seconds_count 1$/m.test(t) && /^streamer_consumer_lag\{/m.test(t) ? t : undefined;
    }, 60_000, 200);

    expect(await composeHealthcheck(port)).toBe(0); // ready: the compose healthcheck passes

    const exported = new Set<string>();
    const labels = new Set<string>(['job', 'instance']); // added by Prometheus to every scraped series
    for (const line of text.split('\n')) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (type) {
        const [, name, kind] = type as unknown as [string, string, string];
        exported.add(name);
        if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(name + s);
        if (kind === 'histogram') labels.add('le');
      }
      const sample = /^[a-z_:][a-z0-9_:]*\{([^}]*)\}/i.exec(line);
      if (sample) for (const m of (sample[1] as string).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(m[1] as string);
    }
    const used = [...ruleExprs, ...dashboardExprs].map(names);
    const usedMetrics = new Set(used.flatMap((u) => u.metrics));
    const usedLabels = new Set(used.flatMap((u) => u.labels));
    // `up` is Prometheus's own series per scrape target (StreamerDown), the one name not from us.
    const missing = [...usedMetrics].filter((m) => m !== 'up' && !exported.has(m));
    expect(missing).toEqual([]);
    expect([...usedLabels].filter((l) => !labels.has(l))).toEqual([]);
    // The names the issue asked for are all there.
    for (const m of ['streamer_rows_published_total', 'streamer_rows_inserted_total', 'streamer_consumer_lag', 'streamer_pending_rows', 'streamer_dead_letters_total', 'streamer_claim_to_clickhouse_seconds_bucket', 'streamer_ready']) {
      expect(usedMetrics.has(m), m).toBe(true);
    }
  });
});
