/**
 * Fault-injecting proxies in front of the REAL services, for sequences that a plain outage cannot
 * produce on demand (pg-boss tests its half-open handling the same way, halfOpenProxy.ts):
 *
 *  - `httpProxy`: in front of ClickHouse's HTTP interface. Every request is read whole, shown to a
 *    rule that decides what happens to it — forwarded, answered with an error of the test's
 *    choosing, held until the test releases it, or forwarded in two halves with a pause between
 *    (the server then sits in the middle of reading an INSERT). The real server answers the rest.
 *  - `tcpProxy`: in front of PostgreSQL. `blackhole()` stops moving bytes on the open connections
 *    without closing them (a half-open connection: no reset, no answer), as a cut network does.
 */
import http from 'node:http';
import net from 'node:net';

export interface ProxiedRequest {
  method: string;
  /** Path and query string, as sent. */
  url: string;
  /** The SQL: the `query` URL parameter (inserts), else the body (queries). */
  query: string;
  body: Buffer;
}

export type Action =
  | { kind: 'forward' }
  /** Answer with this status and body, as the server would (e.g. a ClickHouse exception text). */
  | { kind: 'fail'; status: number; body: string }
  /** Forward once `until` resolves. */
  | { kind: 'hold'; until: Promise<void> }
  /**
   * Forward the headers and the first `bytes` of the body, then the rest once `until` resolves:
   * the server has started the query and waits for the rest of its input.
   */
  | { kind: 'split'; bytes: number; until: Promise<void> };

export type Rule = (req: ProxiedRequest) => Action | Promise<Action>;

export interface HttpProxy {
  url: string;
  /** Every request seen, in order of arrival. */
  readonly seen: ProxiedRequest[];
  rule: Rule;
  close(): Promise<void>;
}

export const forward: Rule = () => ({ kind: 'forward' });

/** The text ClickHouse 18.16 answers an insert with when a query runs out of memory (code 241). */
export const MEMORY_LIMIT_ERROR = 'Code: 241, e.displayText() = DB::Exception: Memory limit (for query) exceeded: would use 9.31 GiB (injected by the test proxy), e.what() = DB::Exception\n';

export async function httpProxy(target: string, rule: Rule = forward): Promise<HttpProxy> {
  const to = new URL(target);
  const seen: ProxiedRequest[] = [];
  const state = { rule };
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = req.url ?? '/';
      const param = new URL(url, 'http://x').searchParams.get('query');
      const info: ProxiedRequest = { method: req.method ?? 'GET', url, query: param ?? body.toString('utf8'), body };
      seen.push(info);
      void (async () => {
        const action = await state.rule(info);
        if (action.kind === 'fail') {
          res.writeHead(action.status, { 'content-type': 'text/plain', 'x-clickhouse-exception-code': (/^Code: (\d+)/.exec(action.body)?.[1] ?? '0') });
          res.end(action.body);
          return;
        }
        if (action.kind === 'hold') await action.until;
        const headers = { ...req.headers, host: to.host, 'content-length': String(body.length) };
        delete headers['transfer-encoding'];
        const upstream = http.request({ host: to.hostname, port: to.port, method: req.method, path: url, headers }, (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        });
        // The client went away (its own timeout): the request to the server goes on regardless,
        // as it does when a real client gives up on a request the server already has.
        upstream.on('error', () => res.destroy());
        if (action.kind === 'split') {
          upstream.write(body.subarray(0, action.bytes));
          await action.until;
          upstream.end(body.subarray(action.bytes));
        } else {
          upstream.end(body);
        }
      })().catch(() => res.destroy());
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    get rule() {
      return state.rule;
    },
    set rule(r: Rule) {
      state.rule = r;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface TcpProxy {
  port: number;
  /** Open connections stop moving bytes (both ways) and are never closed: half-open. */
  blackhole(): void;
  /** New connections work again; the blackholed ones stay dead. */
  restore(): void;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

export async function tcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const live = new Set<{ client: net.Socket; server: net.Socket; dead: boolean }>();
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    const upstream = net.connect(targetPort, targetHost);
    const pair = { client, server: upstream, dead: false };
    live.add(pair);
    const pipe = (from: net.Socket, to: net.Socket) =>
      from.on('data', (d) => {
        if (!pair.dead) to.write(d);
      });
    pipe(client, upstream);
    pipe(upstream, client);
    const end = () => {
      live.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', () => !pair.dead && end());
    upstream.on('error', end).on('close', () => !pair.dead && end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    blackhole() {
      for (const p of live) p.dead = true;
    },
    restore() {
      // Nothing to do for new connections: only the pairs marked dead stay dead.
    },
    get accepted() {
      return accepted;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const p of live) {
          p.client.destroy();
          p.server.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
