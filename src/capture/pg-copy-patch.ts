/**
 * node-postgres's protocol parser (pg-protocol 1.x) makes two objects for every CopyData message
 * it reads: a Buffer view of the message's bytes (`reader.bytes()`, ~100 ns in Node 20) and a
 * CopyDataMessage. The producer's backlog reads one row per CopyData (`COPY … TO STDOUT`,
 * copy-out.ts) and copies its bytes at once, so for a million rows that was two million short-lived
 * objects and the scavenges they cost (issue 14).
 *
 * This puts, in the parser's prototype, a handlePacket that answers CopyData with ONE reused
 * message: `bytes` (the parser's buffer), `start` and `end` locate the row, valid during the
 * callback — as the view was, which is a view of the same buffer. `more` says that the next
 * message in that buffer is a whole CopyData too: the parser hands it over within the same parse
 * call, before its buffer can change (its mergeBuffer runs only at the next call), so the reader
 * may copy consecutive rows at once (CopyRows). Its `chunk` still makes the view, for any other
 * reader of CopyData. Every other message is parsed by node-postgres's own code.
 *
 * The callback that receives it (pg's Connection) emits it synchronously to Client#_handleCopyData
 * and the active query's handleCopyData; nothing of pg keeps it. `pgCopyPatch.active` says whether
 * the patch took (a unit test checks it); without it copy-out.ts reads `chunk` as before.
 */
import { createRequire } from 'node:module';

/** The CopyData message as the patched parser hands it over (also a CopyDataMessage: name, length, chunk). */
export interface CopyDataInPlace {
  readonly name: 'copyData';
  length: number;
  bytes: Buffer;
  start: number;
  end: number;
  /** The next message in `bytes` is a whole CopyData, handed over before `bytes` can change. */
  more: boolean;
  readonly chunk: Buffer;
}

const COPY_DATA = 100; // 'd'
const HEADER = 4; // the length field, which `length` counts

class ReusedCopyData implements CopyDataInPlace {
  readonly name = 'copyData' as const;
  length = 0;
  bytes: Buffer = Buffer.alloc(0);
  start = 0;
  end = 0;
  more = false;

  get chunk(): Buffer {
    return this.bytes.subarray(this.start, this.end);
  }
}

type HandlePacket = (this: { bufferOffset: number; bufferLength: number }, offset: number, code: number, length: number, bytes: Buffer) => unknown;

function install(): { active: boolean; original: HandlePacket | null } {
  try {
    // pg-protocol as pg itself resolves it (it is pg's dependency, not ours).
    const fromPg = createRequire(createRequire(import.meta.url).resolve('pg'));
    const { Parser } = fromPg('pg-protocol/dist/parser.js') as { Parser: { prototype: { handlePacket?: HandlePacket } } };
    const original = Parser.prototype.handlePacket;
    if (typeof original !== 'function') return { active: false, original: null };
    const message = new ReusedCopyData();
    Parser.prototype.handlePacket = function handlePacket(this: { bufferOffset: number; bufferLength: number }, offset, code, length, bytes) {
      if (code !== COPY_DATA) return original.call(this, offset, code, length, bytes);
      const end = offset + length - HEADER;
      // parse() set bufferOffset and bufferLength before its loop: the bytes it delivers from.
      const last = this.bufferOffset + this.bufferLength;
      message.length = length;
      message.bytes = bytes;
      message.start = offset;
      message.end = end;
      message.more = end + 5 <= last && bytes[end] === COPY_DATA && end + 1 + bytes.readUInt32BE(end + 1) <= last;
      return message;
    };
    return { active: true, original };
  } catch {
    return { active: false, original: null };
  }
}

export const pgCopyPatch = install();

/** Where a CopyData message's row is: in place when the patch gave it, else its `chunk` (then `more` is false). */
export function copyDataSpan(msg: { chunk: Buffer } & Partial<CopyDataInPlace>): { bytes: Buffer; start: number; end: number; more: boolean } {
  if (msg instanceof ReusedCopyData) return msg;
  return { bytes: msg.chunk, start: 0, end: msg.chunk.length, more: false };
}
