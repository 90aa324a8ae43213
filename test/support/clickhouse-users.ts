/**
 * A restricted ClickHouse user for the least-privilege test, on whatever server answers at
 * CLICKHOUSE_URL — whoever started it (issue 15: a second clone's `npm test` against the first
 * clone's stack failed here):
 *
 *  1. ClickHouse 20.5 and later: SQL (`CREATE USER … GRANT …`, what `streamer grants --clickhouse` prints),
 *     when the admin user may manage access;
 *  2. otherwise (18.16 has no SQL users) a `users.d/*.xml` file beside the users file of the
 *     server process that listens on the URL's port — found through /proc (its command line names
 *     its config file, whose <users_config> names the users file): the server re-reads it within
 *     seconds. This needs the server on this machine and a users.d folder we may write.
 *  3. When neither works, a clear error naming what the test needs.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';

export interface RestrictedUser {
  /** How it was made: 'sql' or the users.d file written. */
  how: string;
  drop(): Promise<void>;
}

/** The statements of `streamer grants --clickhouse` for `user` and `password`. */
export function consumerRoleStatements(sql: string, user: string, password: string): string[] {
  return sql
    .replaceAll('streamer_consumer', user)
    .replace("'change-me'", `'${password}'`)
    .split(';')
    .map((s) => s.replace(/--.*$/gm, '').trim())
    .filter(Boolean);
}

export async function createRestrictedUser(
  admin: ClickHouseClient,
  clickhouseUrl: string,
  opts: { user: string; password: string; database: string; /** `streamer grants --clickhouse` */ roleSql: string },
): Promise<RestrictedUser> {
  const version = ((await (await admin.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' })).json()) as Array<{ v: string }>)[0]!.v;
  const [major, minor] = version.split('.').map(Number) as [number, number];
  let sqlRefused = '';
  if (major > 20 || (major === 20 && minor >= 5)) {
    try {
      for (const statement of consumerRoleStatements(opts.roleSql, opts.user, opts.password)) await admin.command({ query: statement });
      return { how: 'sql', drop: async () => void (await admin.command({ query: `DROP USER IF EXISTS ${opts.user}` })) };
    } catch (err) {
      sqlRefused = ` (SQL access management refused: ${(err as Error).message.split('\n')[0]})`;
    }
  }
  const usersD = serverUsersDir(clickhouseUrl);
  if (typeof usersD !== 'string') {
    throw new Error(
      `the least-privilege test needs a restricted ClickHouse user, and ClickHouse ${version} at ${clickhouseUrl} offers no way to add one here${sqlRefused}: ` +
        `${usersD.why}. Run it against a ClickHouse of 20.5 or later whose admin user has access_management, or against a server on this machine (e.g. "npm run stack:up")`,
    );
  }
  mkdirSync(usersD, { recursive: true });
  const file = path.join(usersD, `${opts.user}.xml`);
  writeFileSync(
    file,
    `<yandex><users><${opts.user}>
      <password>${opts.password}</password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile><quota>default</quota>
      <allow_databases><database>${opts.database}</database></allow_databases>
    </${opts.user}></users></yandex>\n`,
  );
  return { how: file, drop: async () => rmSync(file, { force: true }) };
}

/** The users.d folder of the ClickHouse process listening on the URL's port, or why there is none. */
export function serverUsersDir(clickhouseUrl: string): string | { why: string } {
  const url = new URL(clickhouseUrl);
  if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(url.hostname)) return { why: `${url.hostname} is not this machine` };
  const port = Number(url.port || (url.protocol === 'https:' ? 8443 : 8123));
  const pid = listeningPid(port);
  if (pid === null) return { why: `no process of this machine that we can see listens on port ${port}` };
  const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  const i = args.findIndex((a) => a === '--config-file' || a === '-C' || a.startsWith('--config-file='));
  const arg = args[i];
  const cwd = readlinkSync(`/proc/${pid}/cwd`);
  const config = arg === undefined ? '/etc/clickhouse-server/config.xml' : path.resolve(cwd, arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : (args[i + 1] ?? ''));
  if (!existsSync(config)) return { why: `the server (pid ${pid}) reads ${config}, which we cannot read` };
  const usersFile = /<users_config>\s*([^<]+?)\s*<\/users_config>/.exec(readFileSync(config, 'utf8'))?.[1] ?? 'users.xml';
  return path.join(path.dirname(path.resolve(path.dirname(config), usersFile)), 'users.d');
}

/** The pid of the process with a listening TCP socket on `port` (from /proc/net/tcp{,6}). */
function listeningPid(port: number): number | null {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT; state 0A is LISTEN; inode is the 10th field.
      if (f[1]?.endsWith(`:${hex}`) && f[3] === '0A' && f[9]) inodes.add(f[9]);
    }
  }
  if (inodes.size === 0) return null;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${entry}/fd/${fd}`);
        if (target.startsWith('socket:[') && inodes.has(target.slice(8, -1))) return Number(entry);
      } catch {
        /* gone meanwhile */
      }
    }
  }
  return null;
}
