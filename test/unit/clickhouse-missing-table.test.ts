// A "table doesn't exist" (60) or "database doesn't exist" (81) from ClickHouse: a dropped table
// stops the consumer (issue 9, finding 9), but ClickHouse 18.16 also answers so for a while after
// a restart, while it still attaches its tables — the fault suite's ClickHouse outage met it, and
// the consumer stopped for good — and while it shuts down. The server's uptime tells them apart. A fake client answers the
// uptime query; the sequence itself is provoked by `npm run test:faults` (clickhouse-outage).
import { describe, expect, it } from 'vitest';
import type { ClickHouseClient } from '@clickhouse/client';
import { clickhouseFailure, CLICKHOUSE_LOADING_GRACE_S, missingWhileLoading } from '../../src/sink/clickhouse.js';
import { loadConfig } from '../../src/config/config.js';

const config = loadConfig({});
const missing = (code: number) => Object.assign(new Error(`Code: ${code}, e.displayText() = DB::Exception: Table db.user_login doesn't exist.`), { code: String(code) });
/** A server answering the uptime query with each value in turn (the last one from then on). */
const server = (...uptimes: Array<number | Error>) => {
  let i = 0;
  return {
    query: async () => {
      const uptime = uptimes[Math.min(i++, uptimes.length - 1)] as number | Error;
      if (uptime instanceof Error) throw uptime;
      return { json: async () => [{ s: String(uptime) }] };
    },
  } as unknown as ClickHouseClient;
};
const noWait = { sleep: async () => {} };
const decide = (err: Error, uptime: number | Error, seenSecondsAgo: number, ...later: Array<number | Error>) =>
  missingWhileLoading(server(uptime, ...later), err, clickhouseFailure(config, err, 'db.user_login'), Date.now() - seenSecondsAgo * 1000, noWait);

describe('a missing table right after a ClickHouse restart is retried; a dropped one is not', () => {
  it('the server restarted after the table was last seen, moments ago: retriable, and the message says why', async () => {
    const e = await decide(missing(60), 5, 30);
    expect(e.retriable).toBe(true);
    expect(e.message).toBe('ClickHouse table db.user_login does not exist — run "streamer migrate" — or ClickHouse, restarted 5 s ago, is still attaching its tables: retrying');
    expect((await decide(missing(81), 5, 30)).retriable).toBe(true);
  });

  it('the server did not restart since the table was last seen and keeps answering (it was dropped): not retriable', async () => {
    const e = await decide(missing(60), 5, 2, 6, 6, 7);
    expect(e.retriable).toBe(false);
    expect(e.message).toBe('ClickHouse table db.user_login does not exist — run "streamer migrate"');
  });

  it('the server is shutting down (it stops answering, or restarts, moments later): retriable', async () => {
    const stopping = await decide(missing(60), 3600, 0.03, 3600, new Error('ECONNREFUSED'));
    expect(stopping.retriable).toBe(true);
    expect(stopping.message).toBe('ClickHouse table db.user_login does not exist — run "streamer migrate" — or ClickHouse was shutting down (it stopped answering moments later): retrying');
    const restarted = await decide(missing(81), 3600, 0.03, 0);
    expect(restarted.retriable).toBe(true);
    expect(restarted.message).toMatch(/it restarted moments later\): retrying$/);
  });

  it(`still missing ${CLICKHOUSE_LOADING_GRACE_S} s after the restart: not retriable`, async () => {
    expect((await decide(missing(60), CLICKHOUSE_LOADING_GRACE_S, 3600)).retriable).toBe(false);
  });

  it('no answer to the uptime query: retriable (the server is restarting)', async () => {
    expect((await decide(missing(60), new Error('ECONNREFUSED'), 30)).retriable).toBe(true);
  });

  it('other errors pass through unchanged', async () => {
    const denied = Object.assign(new Error('Code: 497, e.displayText() = DB::Exception: Not enough privileges'), { code: '497' });
    const failure = clickhouseFailure(config, denied, 'db.user_login');
    expect(await missingWhileLoading(server(1), denied, failure, 0, noWait)).toBe(failure);
  });
});
