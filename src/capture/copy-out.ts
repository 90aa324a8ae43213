/**
 * `COPY (query) TO STDOUT` on a node-postgres client, each row handed to `onRow` as the bytes of
 * its CopyData message: `bytes[start, end)`, node-postgres's read buffer, valid only during the
 * call (src/tables/copy-rows.ts copies it). node-postgres passes CopyData to the active query
 * (Client#_handleCopyData); this is such a query, as pg-copy-streams' are. pg-copy-patch.ts makes
 * the parser hand the row over in place.
 */
import type pg from 'pg';
import { copyDataSpan, type CopyDataInPlace } from './pg-copy-patch.js';

/**
 * A row's bytes: `bytes[start, end)`, valid only during the call — or, when `more`, until the next
 * call, which comes from the same `bytes` before they can change (pg-copy-patch.ts).
 */
export type CopyRowHandler = (bytes: Buffer, start: number, end: number, more: boolean) => void;

class CopyOut {
  /**
   * Set by node-postgres, and called here when the COPY ends, as its own queries do: with a
   * `query_timeout` (the producer's DATABASE_QUERY_TIMEOUT_MS) node-postgres wraps it to clear its
   * read timer, which otherwise held this query, and through it the whole batch, until it fired
   * (the sweep's memory grew by ~2.5 MB a batch).
   */
  callback?: (err: unknown, result?: unknown) => void;
  private rows = 0;
  private failure: unknown = null;
  private settled = false;

  constructor(
    private readonly text: string,
    private readonly onRow: CopyRowHandler,
    private readonly resolve: (rows: number) => void,
    private readonly reject: (err: unknown) => void,
  ) {}

  submit(connection: { query(text: string): void }): void {
    connection.query(this.text);
  }

  handleCopyData(msg: { chunk: Buffer } & Partial<CopyDataInPlace>): void {
    if (this.failure !== null) return;
    try {
      const { bytes, start, end, more } = copyDataSpan(msg);
      this.onRow(bytes, start, end, more);
      this.rows++;
    } catch (err) {
      this.failure = err; // reported once PostgreSQL is done (ReadyForQuery): the session stays usable
    }
  }

  /** A server error (then no ReadyForQuery reaches this query), a lost connection, or node-postgres's read timeout. */
  handleError(err: unknown): void {
    this.settle(err);
  }

  handleReadyForQuery(): void {
    this.settle(this.failure);
  }

  private settle(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.callback?.(err, this.rows);
    if (err !== null) this.reject(err);
    else this.resolve(this.rows);
  }

  // What a COPY TO never gets, or needs nothing done for.
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleCommandComplete(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {}
}

/** Runs `COPY (…) TO STDOUT` (its text given whole); resolves with the number of rows. */
export function copyOut(client: Pick<pg.ClientBase, 'query'>, text: string, onRow: CopyRowHandler): Promise<number> {
  return new Promise((resolve, reject) => {
    client.query(new CopyOut(text, onRow, resolve, reject) as unknown as pg.Submittable);
  });
}
