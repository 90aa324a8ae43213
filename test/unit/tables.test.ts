// Which tables, and their specs: STREAMER_TABLES and the config file, the catalog → spec checks,
// identifiers, and what each ClickHouse version can hold.
import { describe, expect, it } from 'vitest';
import { parseTableName, readTablesFile, tableConfigs } from '../../src/config/tables.js';
import { buildSpec } from '../../src/tables/introspect.js';
import { chIdent, chLiteral, objectId, pgIdent, pgLiteral } from '../../src/tables/identifiers.js';
import { capabilities, parseServerVersion } from '../../src/tables/server.js';
import { captureObjects, defaultTopic } from '../../src/tables/spec.js';
import { column, spec } from './support/specs.js';

describe('STREAMER_TABLES', () => {
  it('defaults to the seed table with its topic, flag and ClickHouse table (zero config)', () => {
    expect(tableConfigs({})).toEqual([
      { schema: 'public', table: 'user_login', topic: 'user_event', dlqTopic: 'user_event.dlq', clickhouseTable: 'user_login', exclude: [], key: null, flagColumn: 'sent_to_kafka' },
    ]);
    expect(tableConfigs({ KAFKA_TOPIC: 'custom', KAFKA_DLQ_TOPIC: 'custom.dead' })[0]).toMatchObject({ topic: 'custom', dlqTopic: 'custom.dead' });
  });

  it('folds unquoted names to lower case and keeps quoted ones as written, commas and dots included', () => {
    expect(parseTableName('Orders')).toEqual({ schema: 'public', table: 'orders' });
    expect(parseTableName('"Sales"."Order Items"')).toEqual({ schema: 'Sales', table: 'Order Items' });
    expect(parseTableName('"a.b"')).toEqual({ schema: 'public', table: 'a.b' });
    expect(parseTableName('"say ""hi"""')).toEqual({ schema: 'public', table: 'say "hi"' });
    const t = tableConfigs({ STREAMER_TABLES: 'shop.orders, "Sales"."Order Items", "a,b"' });
    expect(t.map((c) => [c.schema, c.table, c.topic, c.flagColumn])).toEqual([
      ['shop', 'orders', 'shop.orders', null],
      ['Sales', 'Order Items', `Sales.Order_Items_${objectId('Sales', 'Order Items').slice(-8)}`, null],
      ['public', 'a,b', `public.a_b_${objectId('public', 'a,b').slice(-8)}`, null],
    ]);
  });

  it('refuses, in one line naming the setting, what cannot work', () => {
    expect(() => tableConfigs({ STREAMER_TABLES: 'bad name' })).toThrow(/^STREAMER_TABLES="bad name" is not valid: "bad name" is not a name \(quote it: "bad name"\) — expected \[schema\.\]table/);
    expect(() => tableConfigs({ STREAMER_TABLES: '"open' })).toThrow(/an unclosed double quote/);
    expect(() => tableConfigs({ STREAMER_TABLES: 'a, public.a' })).toThrow('STREAMER_TABLES="a, public.a" names a table twice');
    expect(() => tableConfigs({ STREAMER_TABLES: 'a,b', KAFKA_TOPIC: 't' })).toThrow(/^KAFKA_TOPIC="t" names one topic, but STREAMER_TABLES has 2 tables/);
    expect(() => tableConfigs({ STREAMER_TABLES: 'a,x.a' })).toThrow('x.a and public.a would share the ClickHouse table a — set another for one of them in the config file (STREAMER_CONFIG)');
  });
});

describe('the config file', () => {
  const file = (o: unknown) => readTablesFile('/etc/streamer.json', JSON.stringify(o));

  it('overrides per table, keyed by the same names as STREAMER_TABLES', () => {
    const entries = file({ tables: { 'Shop.Orders': { topic: 'orders', clickhouseTable: 'orders_replica', exclude: ['card'], key: ['id'], flagColumn: 'sent' } } });
    expect(tableConfigs({ STREAMER_TABLES: 'shop.orders' }, entries)).toEqual([
      { schema: 'shop', table: 'orders', topic: 'orders', dlqTopic: 'orders.dlq', clickhouseTable: 'orders_replica', exclude: ['card'], key: ['id'], flagColumn: 'sent' },
    ]);
    // The seed table can leave flag mode for log mode.
    expect(tableConfigs({}, file({ tables: { user_login: { flagColumn: null } } }))[0]?.flagColumn).toBeNull();
  });

  it('names the file and the key of every mistake', () => {
    expect(() => file({ tabels: {} })).toThrow('/etc/streamer.json: tabels is not a setting: expected only "tables"');
    expect(() => file({ tables: { t: { topik: 'x' } } })).toThrow('/etc/streamer.json: tables["t"].topik is not a setting: expected topic, dlqTopic, clickhouseTable, exclude, key, flagColumn');
    expect(() => file({ tables: { t: { topic: 'a b' } } })).toThrow(`/etc/streamer.json: tables["t"].topic="a b" is not a valid Kafka topic name`);
    expect(() => file({ tables: { t: { key: [] } } })).toThrow('tables["t"].key must name at least one column');
    expect(() => file({ tables: { t: { exclude: 'x' } } })).toThrow('tables["t"].exclude must be a list of column names');
    expect(() => readTablesFile('/etc/streamer.json', '{')).toThrow(/^STREAMER_CONFIG="\/etc\/streamer.json" cannot be read: /);
    expect(() => readTablesFile('/no/such/file.json')).toThrow('STREAMER_CONFIG="/no/such/file.json" cannot be read: it does not exist');
    expect(() => tableConfigs({ STREAMER_TABLES: 'a', STREAMER_CONFIG: 'f.json' }, file({ tables: { b: {} } }))).toThrow('f.json: tables["public.b"] is not in STREAMER_TABLES="a" — add it there, or remove its entry');
  });
});

describe('buildSpec', () => {
  const cfg = (o: Partial<Parameters<typeof buildSpec>[0]> = {}) => ({
    schema: 'shop',
    table: 'orders',
    topic: 'shop.orders',
    dlqTopic: 'shop.orders.dlq',
    clickhouseTable: 'orders',
    exclude: [],
    key: null,
    flagColumn: null,
    ...o,
  });
  const catalog = (cols: Parameters<typeof column>[0][], primaryKey = ['id']) => ({ columns: cols.map(column), primaryKey });
  const orders = catalog([
    ['id', 'int8', { notNull: true }],
    ['note', 'text'],
    ['sent', 'bool'],
  ]);

  it('takes the primary key, leaves the flag and excluded columns out, and picks the capture mode', () => {
    const flag = buildSpec(cfg({ flagColumn: 'sent', exclude: ['note'] }), orders);
    expect([flag.columns.map((c) => c.name), flag.keyColumns, flag.capture, flag.qualified, flag.id]).toEqual([['id'], ['id'], { kind: 'flag', column: 'sent' }, '"shop"."orders"', 'shop_orders']);
    expect(buildSpec(cfg(), orders).capture).toEqual({ kind: 'log' });
  });

  it('builds from a running spec (the producer shape check) the spec its config gives, and nothing else', () => {
    const first = buildSpec(cfg({ flagColumn: 'sent' }), orders);
    const again = buildSpec(first, orders);
    expect(again).toEqual(first);
    // The fields are written one by one, not spread from the argument: a spread re-assigned a
    // running spec's fields (see introspect.ts), and it carried whatever else the argument held.
    const fields = ['schema', 'table', 'topic', 'dlqTopic', 'clickhouseTable', 'exclude', 'key', 'flagColumn', 'qualified', 'id', 'capture', 'columns', 'keyColumns'];
    expect(Object.keys(again)).toEqual(fields);
    expect(Object.keys(buildSpec({ ...cfg(), extra: 1 } as Parameters<typeof buildSpec>[0], orders))).toEqual(fields);
  });

  it('refuses what it cannot replicate exactly, naming the table, the column and the fix', () => {
    expect(() => buildSpec(cfg(), null)).toThrow('PostgreSQL has no table shop.orders (STREAMER_TABLES) — create it, or check the name and DATABASE_URL');
    expect(() => buildSpec(cfg(), catalog([['id', 'int8', { notNull: true }]], []))).toThrow(
      'shop.orders has no primary key: streamer needs one to replicate updates and deletes — add one, or name the key columns in the config file (tables["shop.orders"].key)',
    );
    expect(() => buildSpec(cfg({ key: ['note'] }), orders)).toThrow('shop.orders.note is a key column but may be NULL: declare it NOT NULL');
    expect(() => buildSpec(cfg({ exclude: ['nope'] }), orders)).toThrow('shop.orders has no column "nope" to exclude (config file, tables["shop.orders"].exclude)');
    expect(() => buildSpec(cfg({ flagColumn: 'note' }), orders)).toThrow('shop.orders.note is of type text: the flag column (config file, tables["shop.orders"].flagColumn) must be a boolean column');
    expect(() => buildSpec(cfg(), catalog([['id', 'int8', { notNull: true }], ['where', 'point']]))).toThrow(
      /^shop\.orders\.where has type point, which streamer cannot carry exactly \(it carries int2, int4, int8, numeric, .*\) — exclude the column in the config file \(tables\["shop\.orders"\]\.exclude\), or change its type$/,
    );
    expect(() => buildSpec(cfg(), catalog([['id', 'int8', { notNull: true }], ['_version', 'int8']]))).toThrow(/^shop\.orders\._version: the name is reserved for streamer's own columns/);
    expect(() => buildSpec(cfg(), catalog([['id', 'int8', { notNull: true }], ['tags', 'text', { element: 'text' }], ['tags__is_null', 'int4']]))).toThrow(/tags__is_null: the name is reserved/);
  });

  it('the seed table without its flag column is captured in log mode (zero config still works)', () => {
    const s = buildSpec({ ...cfg({ schema: 'public', table: 'user_login', flagColumn: 'sent_to_kafka' }) }, catalog([['id', 'int4', { notNull: true }], ['username', 'text']]));
    expect(s.capture).toEqual({ kind: 'log' });
  });
});

describe('identifiers', () => {
  it('quotes every name on both sides and escapes every literal', () => {
    expect(pgIdent('Order "Items"')).toBe('"Order ""Items"""');
    expect(pgLiteral("it's")).toBe("'it''s'");
    expect(chIdent('a`b\\c')).toBe('`a\\`b\\\\c`');
    expect(chLiteral("it's \\ \n\u0000")).toBe("'it\\'s \\\\ \\x0a\\x00'");
    expect(() => pgIdent('')).toThrow();
  });

  it('gives each table its own object names, user_login keeping its own', () => {
    expect(objectId('public', 'user_login')).toBe('user_login');
    expect(objectId('shop', 'orders')).toBe('shop_orders');
    expect(objectId('public', 'User Login')).toMatch(/^user_login_[0-9a-f]{8}$/);
    expect(objectId('public', 'User Login')).not.toBe(objectId('public', 'user login'));
    expect(objectId('public', 'x'.repeat(80))).toHaveLength(49);
    expect(captureObjects(spec('public', 'user_login', [['id', 'int4', { notNull: true }]]))).toMatchObject({
      changes: '"public"."streamer_user_login_changes"',
      pendingIndex: 'user_login_pending_idx',
    });
    expect(defaultTopic('public', 'user_login')).toBe('user_event');
  });
});

describe('server capabilities', () => {
  it('follow the version: 18.16 (the local stack) and 26.7 (chdb) measured, the rest from the changelog', () => {
    const old = capabilities(parseServerVersion('18.16.1'));
    expect(old).toMatchObject({ dateTime64: false, date32: false, bool: false, maxDecimalPrecision: 38, lowCardinality: false, exactFloats: false, isDeleted: false, dedupToken: false });
    expect(old.dateRange).toEqual({ min: '1970-01-01', max: '2105-12-31' });
    const current = capabilities(parseServerVersion('26.7.2.1'));
    expect(current).toMatchObject({ dateTime64: true, date32: true, bool: true, maxDecimalPrecision: 76, lowCardinality: true, exactFloats: true, isDeleted: true, dedupToken: true });
    expect(current.dateTimeYears).toEqual({ min: 1900, max: 2299 });
    expect(capabilities({ major: 21, minor: 9 })).toMatchObject({ date32: true, bool: false, dateRange: { min: '1925-01-01', max: '2283-11-11' } });
    expect(() => parseServerVersion('banana')).toThrow('cannot read the ClickHouse version from "banana"');
  });
});
