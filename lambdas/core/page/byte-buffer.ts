// A growable byte buffer: what the Thrift writer (thrift.ts) and the dictionary chunk writer
// (dictionary-chunk.ts) write their bytes into.

/** Bytes appended at the end, in memory that doubles as it fills. */
export class ByteBuffer {
  buf = new Uint8Array(1 << 12);
  length = 0;
  reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
  byte(b: number): void {
    this.reserve(1);
    this.buf[this.length++] = b;
  }
  varint(n: number): void {
    let v = n;
    while (v >= 0x80) {
      this.byte((v & 0x7f) | 0x80);
      v >>>= 7;
    }
    this.byte(v);
  }
  int32(v: number): void {
    this.reserve(4);
    const b = this.buf;
    b[this.length] = v;
    b[this.length + 1] = v >>> 8;
    b[this.length + 2] = v >>> 16;
    b[this.length + 3] = v >>> 24;
    this.length += 4;
  }
  append(src: Uint8Array, start: number, end: number): void {
    this.reserve(end - start);
    this.buf.set(src.subarray(start, end), this.length);
    this.length += end - start;
  }
  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}
