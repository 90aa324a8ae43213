/**
 * `COPY (query) TO STDOUT` on a node-postgres client, each row handed to `onRow` as the bytes of
 * its CopyData message, a view into node-postgres's read buffer that is valid only during the
 * call (src/tables/copy-rows.ts copies it). node-postgres passes CopyData to the active query
 * (Client#_handleCopyData); this is such a query, as pg-copy-streams' are.
 */
import type pg from 'pg';

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
    private readonly onRow: (row: Buffer) => void,
    private readonly resolve: (rows: number) => void,
    private readonly reject: (err: unknown) => void,
  ) {}

  submit(connection: { query(text: string): void }): void {
    connection.query(this.text);
  }

  handleCopyData(msg: { chunk: Buffer }): void {
    if (this.failure !== null) return;
    try {
      this.onRow(msg.chunk);
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
export function copyOut(client: Pick<pg.ClientBase, 'query'>, text: string, onRow: (row: Buffer) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    client.query(new CopyOut(text, onRow, resolve, reject) as unknown as pg.Submittable);
  });
}
