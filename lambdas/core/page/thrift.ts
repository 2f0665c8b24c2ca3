// Thrift compact protocol (the encoding of Parquet's footer and page headers), read into a
// generic tree and written back unchanged except where the caller edits it: the splicer
// (parquet-splice.ts) rewrites offsets and merges statistics without a model of every struct.
// Spec: thrift/doc/specs/thrift-compact-protocol.md; field ids: parquet-format's parquet.thrift.
import { ExportError } from '../errors.ts';
import { ByteBuffer } from './byte-buffer.ts';

/** Compact protocol type codes. Booleans carry their value in the field header (TRUE, FALSE). */
export const T = { STOP: 0, TRUE: 1, FALSE: 2, BYTE: 3, I16: 4, I32: 5, I64: 6, DOUBLE: 7, BINARY: 8, LIST: 9, SET: 10, MAP: 11, STRUCT: 12 } as const;

export type ThriftValue =
  | { readonly type: typeof T.TRUE | typeof T.FALSE }
  | { readonly type: typeof T.BYTE | typeof T.I16 | typeof T.I32; readonly value: number }
  | { readonly type: typeof T.I64; readonly value: bigint }
  | { readonly type: typeof T.DOUBLE; readonly value: number }
  | { readonly type: typeof T.BINARY; readonly value: Uint8Array }
  | { readonly type: typeof T.LIST | typeof T.SET; readonly element: number; readonly items: ThriftValue[] }
  | { readonly type: typeof T.STRUCT; readonly fields: ThriftStruct };

/** A struct's fields by id; written back in ascending id order. */
export type ThriftStruct = Map<number, ThriftValue>;

class Reader {
  pos: number;
  readonly buf: Uint8Array;
  constructor(buf: Uint8Array, pos: number) {
    this.buf = buf;
    this.pos = pos;
  }
  byte(): number {
    if (this.pos >= this.buf.length) throw new ExportError('Parquet footer: Thrift data ends early');
    return this.buf[this.pos++];
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 70n) throw new ExportError('Parquet footer: Thrift varint too long');
    }
  }
  zigzag(): bigint {
    const v = this.varint();
    return (v >> 1n) ^ -(v & 1n);
  }
}

function readValue(r: Reader, type: number): ThriftValue {
  switch (type) {
    case T.TRUE: case T.FALSE: return { type };
    case T.BYTE: { const b = r.byte(); return { type, value: (b << 24) >> 24 }; }
    case T.I16: case T.I32: return { type, value: Number(r.zigzag()) };
    case T.I64: return { type, value: r.zigzag() };
    case T.DOUBLE: {
      const view = new DataView(r.buf.buffer, r.buf.byteOffset + r.pos, 8);
      r.pos += 8;
      return { type, value: view.getFloat64(0, true) };
    }
    case T.BINARY: {
      const n = Number(r.varint());
      const value = r.buf.slice(r.pos, r.pos + n);
      if (value.length !== n) throw new ExportError('Parquet footer: Thrift binary ends early');
      r.pos += n;
      return { type, value };
    }
    case T.LIST: case T.SET: {
      const head = r.byte();
      const element = head & 0x0f;
      const size = (head >> 4) === 15 ? Number(r.varint()) : head >> 4;
      const items: ThriftValue[] = [];
      for (let i = 0; i < size; i++) {
        // A boolean element is one byte: 1 true, anything else false.
        if (element === T.TRUE || element === T.FALSE) items.push({ type: r.byte() === T.TRUE ? T.TRUE : T.FALSE });
        else items.push(readValue(r, element));
      }
      return { type, element, items };
    }
    case T.STRUCT: return { type, fields: readFields(r) };
    default: throw new ExportError(`Parquet footer: Thrift type ${type} is not supported`);
  }
}

function readFields(r: Reader): ThriftStruct {
  const fields: ThriftStruct = new Map();
  let last = 0;
  for (;;) {
    const head = r.byte();
    const type = head & 0x0f;
    if (type === T.STOP) return fields;
    const delta = head >> 4;
    const id = delta === 0 ? Number(r.zigzag()) : last + delta;
    fields.set(id, readValue(r, type));
    last = id;
  }
}

/** The struct encoded at `buf[pos]`, and where it ends. */
export function readStruct(buf: Uint8Array, pos = 0): { struct: ThriftStruct; end: number } {
  const r = new Reader(buf, pos);
  const struct = readFields(r);
  return { struct, end: r.pos };
}

/** The compact protocol's integers (bigint: i64 values span the whole range). */
class Writer extends ByteBuffer {
  bytes(b: Uint8Array): void {
    this.append(b, 0, b.length);
  }
  bigVarint(v: bigint): void {
    let x = v;
    while (x >= 0x80n) {
      this.byte(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.byte(Number(x));
  }
  zigzag(v: bigint): void {
    this.bigVarint(v >= 0n ? v << 1n : ((-v) << 1n) - 1n);
  }
  result(): Uint8Array {
    return this.view().slice();
  }
}

function writeValue(w: Writer, v: ThriftValue): void {
  switch (v.type) {
    case T.TRUE: case T.FALSE: return w.byte(v.type);
    case T.BYTE: return w.byte(v.value);
    case T.I16: case T.I32: return w.zigzag(BigInt(v.value));
    case T.I64: return w.zigzag(v.value);
    case T.DOUBLE: {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, v.value, true);
      return w.bytes(b);
    }
    case T.BINARY:
      w.varint(v.value.length);
      return w.bytes(v.value);
    case T.LIST: case T.SET: {
      const n = v.items.length;
      if (n < 15) w.byte((n << 4) | v.element);
      else {
        w.byte(0xf0 | v.element);
        w.varint(n);
      }
      for (const item of v.items) writeValue(w, item);
      return;
    }
    case T.STRUCT: return writeFields(w, v.fields);
  }
}

function writeFields(w: Writer, fields: ThriftStruct): void {
  let last = 0;
  for (const id of [...fields.keys()].sort((a, b) => a - b)) {
    const v = fields.get(id)!;
    // A boolean field's value is its type code; inside a list it is a byte of its own.
    const delta = id - last;
    if (delta > 0 && delta <= 15) w.byte((delta << 4) | v.type);
    else {
      w.byte(v.type);
      w.zigzag(BigInt(id));
    }
    if (v.type !== T.TRUE && v.type !== T.FALSE) writeValue(w, v);
    last = id;
  }
  w.byte(T.STOP);
}

/** The compact encoding of a struct. */
export function writeStruct(struct: ThriftStruct): Uint8Array {
  const w = new Writer();
  writeFields(w, struct);
  return w.result();
}

// ---------------------------------------------------------------- typed access

export function i64(value: bigint | number): ThriftValue {
  return { type: T.I64, value: BigInt(value) };
}

export function i32(value: number): ThriftValue {
  return { type: T.I32, value };
}

export function getStruct(s: ThriftStruct, id: number): ThriftStruct | undefined {
  const v = s.get(id);
  return v?.type === T.STRUCT ? v.fields : undefined;
}

export function getList(s: ThriftStruct, id: number): ThriftValue[] {
  const v = s.get(id);
  return v?.type === T.LIST || v?.type === T.SET ? v.items : [];
}

export function getInt(s: ThriftStruct, id: number): bigint | undefined {
  const v = s.get(id);
  if (v?.type === T.I64) return v.value;
  if (v?.type === T.I32 || v?.type === T.I16 || v?.type === T.BYTE) return BigInt(v.value);
  return undefined;
}

export function getBinary(s: ThriftStruct, id: number): Uint8Array | undefined {
  const v = s.get(id);
  return v?.type === T.BINARY ? v.value : undefined;
}

export function getBool(s: ThriftStruct, id: number): boolean | undefined {
  const v = s.get(id);
  return v?.type === T.TRUE ? true : v?.type === T.FALSE ? false : undefined;
}

export function structValue(fields: ThriftStruct): ThriftValue {
  return { type: T.STRUCT, fields };
}

export function listValue(element: number, items: ThriftValue[]): ThriftValue {
  return { type: T.LIST, element, items };
}
