/**
 * /healthz (the process is alive), /readyz (connected to what it needs: 200 or 503 with the
 * reasons) and /metrics (Prometheus text), on HTTP_HOST:HTTP_PORT (default 127.0.0.1 and a port
 * per command, DEFAULT_HTTP_PORTS). HTTP_PORT=0 turns it off.
 */
import http from 'node:http';
import { StreamerError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { registry } from './metrics.js';

export interface HttpServer {
  port: number;
  close(): Promise<void>;
}

export interface Listen {
  host: string;
  port: number;
  /** When the port is the command's default, not HTTP_PORT: named so in the error when it is taken. */
  defaultOf?: string;
}

/** `readiness` returns the list of what is not ready (empty = ready). */
export async function startHttpServer({ host, port, defaultOf }: Listen, logger: Logger, readiness: () => string[]): Promise<HttpServer> {
  const log = logger.child({ component: 'http' });
  const server = http.createServer((req, res) => {
    const url = req.url?.split('?')[0];
    if (url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (url === '/readyz') {
      const notReady = readiness();
      res.writeHead(notReady.length ? 503 : 200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ ready: notReady.length === 0, notReady })}\n`);
    } else if (url === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz, /readyz, /metrics\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new StreamerError(
          err.code === 'EADDRINUSE'
            ? `${defaultOf ? `port ${port}, the default health/metrics port of "streamer ${defaultOf}", is` : `HTTP_PORT=${port} is`} already in use on ${host}${defaultOf ? ` (another "streamer ${defaultOf}" on this host?)` : ''} — set HTTP_PORT to a free port, or 0 to turn the health/metrics server off`
            : `cannot serve health and metrics on ${host}:${port} (HTTP_HOST, HTTP_PORT): ${err.message}`,
          { cause: err },
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const actual = (server.address() as { port: number }).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  log.info({ host, port: actual }, `health and metrics on http://${shown}:${actual} (/healthz, /readyz, /metrics)`);
  return {
    port: actual,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
