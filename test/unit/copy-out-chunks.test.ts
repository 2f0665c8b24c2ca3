// The COPY receiver's message parser (lambdas/adapters/copy-out.ts) on the same protocol bytes
// cut into chunks at every offset and at seeded random ones, as a socket may deliver them: a
// message header split across chunks, a chunk ending right after a header, a CopyDone that
// shares a chunk with the last row. The receiver must keep exactly the CopyData payloads, skip
// the asynchronous messages between them, and hand pg every byte from CopyDone on. The
// connection is a stand-in for the socket only (the real-server test is integration/copy-out).
import { EventEmitter } from 'node:events';
import type { Connection } from 'pg';
import { describe, expect, it } from 'vitest';
import { CopyOut } from '../../lambdas/adapters/copy-out.ts';
import { random } from '../fuzz/random.ts';

function message(code: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(code, 0, 'latin1');
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** What the server sends for a COPY TO: CopyOutResponse, rows as CopyData with notices and a
 *  parameter status between them, then CopyDone, CommandComplete and ReadyForQuery. */
function serverBytes(rows: number, next: () => number): { wire: Buffer; payload: Buffer; rest: Buffer } {
  const payloads: Buffer[] = [];
  const wire: Buffer[] = [message('H', Buffer.from([1, 0, 0]))];
  for (let r = 0; r < rows; r++) {
    // 0–300 bytes, so bodies both shorter and longer than a header occur, and empty ones.
    const body = Buffer.alloc(Math.floor(next() * 300));
    for (let i = 0; i < body.length; i++) body[i] = Math.floor(next() * 256);
    payloads.push(body);
    wire.push(message('d', body));
    if (next() < 0.05) wire.push(message('N', Buffer.from('SNOTICE\0Mrow\0\0', 'latin1')));
    if (next() < 0.02) wire.push(message('S', Buffer.from('TimeZone\0UTC\0', 'latin1')));
  }
  const rest = Buffer.concat([message('c', Buffer.alloc(0)), message('C', Buffer.from('COPY 1\0', 'latin1')), message('Z', Buffer.from('I'))]);
  wire.push(rest);
  return { wire: Buffer.concat(wire), payload: Buffer.concat(payloads), rest };
}

/** Feed `wire` cut at `cuts` to a CopyOut; what it kept and what pg's own listener received. */
async function receive(wire: Buffer, cuts: readonly number[], reuse?: Buffer): Promise<{ kept: Buffer; handedBack: Buffer }> {
  const stream = new EventEmitter();
  const handedBack: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => handedBack.push(Buffer.from(chunk)));
  const connection = { stream, query: () => undefined } as unknown as Connection;
  const copy = new CopyOut('COPY t TO STDOUT (FORMAT binary)', reuse);
  expect(copy.submit(connection)).toBeUndefined();
  let at = 0;
  for (const cut of [...cuts, wire.length]) {
    // Each chunk in memory of its own (as a socket's are): nothing may read past its end.
    stream.emit('data', Buffer.from(wire.subarray(at, cut)));
    at = cut;
  }
  copy.handleCommandComplete();
  copy.handleReadyForQuery();
  return { kept: Buffer.from(await copy.done), handedBack: Buffer.concat(handedBack) };
}

describe('COPY receiver: protocol bytes in any chunking', () => {
  it('keeps the same payload whichever single offset splits the stream', async () => {
    const { wire, payload, rest } = serverBytes(40, random(20261130));
    for (let cut = 1; cut < wire.length; cut++) {
      const { kept, handedBack } = await receive(wire, [cut], Buffer.alloc(8));
      expect(kept.equals(payload), `cut at ${cut}`).toBe(true);
      expect(handedBack.equals(rest), `cut at ${cut}`).toBe(true);
    }
  });

  it('keeps the same payload through byte-sized chunks and seeded random chunkings', async () => {
    const oneByte = serverBytes(30, random(7));
    const single = await receive(oneByte.wire, Array.from({ length: oneByte.wire.length - 1 }, (_, i) => i + 1));
    expect(single.kept.equals(oneByte.payload)).toBe(true);
    expect(single.handedBack.equals(oneByte.rest)).toBe(true);
    for (let seed = 1; seed <= 200; seed++) {
      const next = random(seed * 7919);
      const { wire, payload, rest } = serverBytes(1 + Math.floor(next() * 400), next);
      const cuts: number[] = [];
      // Chunks of 1–12 bytes (headers split every way) mixed with long ones.
      for (let at = 0; ;) {
        at += next() < 0.5 ? 1 + Math.floor(next() * 12) : 1 + Math.floor(next() * 5000);
        if (at >= wire.length) break;
        cuts.push(at);
      }
      const { kept, handedBack } = await receive(wire, cuts);
      expect(kept.equals(payload), `seed ${seed}`).toBe(true);
      expect(handedBack.equals(rest), `seed ${seed}`).toBe(true);
    }
  });
});
