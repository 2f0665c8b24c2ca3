// columns.hash: a PII column is exported as the hex SHA-256 of salt ‖ 0x00 ‖ its text, so it can
// still be joined and counted but never read. The salt stays in this process: it is never part
// of a query (no pg_stat_activity, no server log), of a log line, or of the lake.
import { createHash } from 'node:crypto';
import * as arrow from 'apache-arrow';

const HEX_LENGTH = 64;

/** Replace every value of a Utf8 column with its salted SHA-256 (hex); NULL stays NULL. */
export function hashColumn(data: arrow.Data, salt: string): arrow.Data {
  const offsets = data.valueOffsets as Int32Array;
  const values = data.values as Uint8Array;
  const out = new Uint8Array(data.length * HEX_LENGTH);
  const outOffsets = new Int32Array(data.length + 1);
  const prefix = Buffer.concat([Buffer.from(salt, 'utf8'), Buffer.from([0])]);
  let used = 0;
  for (let i = 0; i < data.length; i++) {
    if (data.getValid(i)) {
      const hex = createHash('sha256').update(prefix).update(values.subarray(offsets[i], offsets[i + 1])).digest('hex');
      out.set(Buffer.from(hex, 'latin1'), used);
      used += HEX_LENGTH;
    }
    outOffsets[i + 1] = used;
  }
  return arrow.makeData({
    type: new arrow.Utf8(),
    length: data.length,
    nullCount: data.nullCount,
    nullBitmap: data.nullBitmap,
    valueOffsets: outOffsets,
    data: out.subarray(0, used),
  });
}

/** What the same hash gives for one text value (for joins against the lake and for tests). */
export function hashText(text: string, salt: string): string {
  return createHash('sha256').update(salt, 'utf8').update(Buffer.from([0])).update(text, 'utf8').digest('hex');
}
