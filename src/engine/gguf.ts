// Reading and writing GGUF files (version 3): the metadata, the tensor table and
// plain F32/F16 tensor data. The project makes its own tiny model and has to repair
// the metadata llama-finetune drops, so it needs a writer, not just a reader.
import { createReadStream, createWriteStream } from "node:fs";
import { open } from "node:fs/promises";
import { pipeline } from "node:stream/promises";

// ---------------------------------------------------------------- public types

export type GgufNumberType = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64";
export type GgufBigIntType = "u64" | "i64";
export type GgufScalarType = GgufNumberType | GgufBigIntType | "bool" | "string";

export type GgufScalar =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: bigint }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string };

/** Arrays hold one scalar type; GGUF also allows arrays of arrays, which no
 * llama.cpp model key uses, so they are not supported. */
export type GgufArray =
  | { type: "array"; itemType: GgufNumberType; value: number[] }
  | { type: "array"; itemType: GgufBigIntType; value: bigint[] }
  | { type: "array"; itemType: "bool"; value: boolean[] }
  | { type: "array"; itemType: "string"; value: string[] };

export type GgufValue = GgufScalar | GgufArray;

/** Key order is kept: it is the order in the file. */
export type GgufMetadata = Map<string, GgufValue>;

/** ggml tensor type ids that this module can write; any id can be read. */
export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 } as const;

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the innermost (contiguous) dimension. */
  dims: number[];
  /** ggml type id (see GGML_TYPE). */
  type: number;
  /** Byte offset from the start of the data section. */
  offset: number;
}

export interface GgufFile {
  version: number;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute file offset of the data section. */
  dataOffset: number;
}

export interface GgufTensorInput {
  name: string;
  dims: number[];
  type: "F32" | "F16";
  data: Float32Array;
}

// Small constructors, so callers write `gguf.u32(4)` rather than object literals.
export const gguf = {
  u8: (value: number): GgufValue => ({ type: "u8", value }),
  i8: (value: number): GgufValue => ({ type: "i8", value }),
  u16: (value: number): GgufValue => ({ type: "u16", value }),
  i16: (value: number): GgufValue => ({ type: "i16", value }),
  u32: (value: number): GgufValue => ({ type: "u32", value }),
  i32: (value: number): GgufValue => ({ type: "i32", value }),
  f32: (value: number): GgufValue => ({ type: "f32", value }),
  f64: (value: number): GgufValue => ({ type: "f64", value }),
  u64: (value: bigint): GgufValue => ({ type: "u64", value }),
  i64: (value: bigint): GgufValue => ({ type: "i64", value }),
  bool: (value: boolean): GgufValue => ({ type: "bool", value }),
  string: (value: string): GgufValue => ({ type: "string", value }),
  numbers: (itemType: GgufNumberType, value: number[]): GgufValue => ({ type: "array", itemType, value }),
  bigints: (itemType: GgufBigIntType, value: bigint[]): GgufValue => ({ type: "array", itemType, value }),
  bools: (value: boolean[]): GgufValue => ({ type: "array", itemType: "bool", value }),
  strings: (value: string[]): GgufValue => ({ type: "array", itemType: "string", value }),
};

// ---------------------------------------------------------------- encoding constants

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const VERSION = 3;
const DEFAULT_ALIGNMENT = 32;

const TYPE_IDS = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;
type TypeName = keyof typeof TYPE_IDS;
const TYPE_NAMES = Object.fromEntries(Object.entries(TYPE_IDS).map(([k, v]) => [v, k])) as Record<number, TypeName>;

const NUMBER_WIDTH: Record<GgufNumberType, number> = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, f64: 8 };

/** Bytes per block and elements per block of ggml types, to size tensor data. */
const BLOCK: Record<number, [bytes: number, elements: number]> = {
  0: [4, 1], // F32
  1: [2, 1], // F16
  2: [18, 32], // Q4_0
  3: [20, 32], // Q4_1
  6: [22, 32], // Q5_0
  7: [24, 32], // Q5_1
  8: [34, 32], // Q8_0
  30: [2, 1], // BF16
};

export function tensorByteSize(t: Pick<GgufTensorInfo, "dims" | "type" | "name">): number {
  const block = BLOCK[t.type];
  if (!block) throw new Error(`tensor ${t.name}: ggml type ${t.type} is not supported`);
  const elements = t.dims.reduce((a, b) => a * b, 1);
  return (elements / block[1]) * block[0];
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

// ---------------------------------------------------------------- writing

/** Growable little-endian byte buffer for the header part of a file. */
class Writer {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  number(type: GgufNumberType, v: number): void {
    this.reserve(8);
    const b = this.buf;
    const o = this.length;
    switch (type) {
      case "u8":
        b.writeUInt8(v, o);
        break;
      case "i8":
        b.writeInt8(v, o);
        break;
      case "u16":
        b.writeUInt16LE(v, o);
        break;
      case "i16":
        b.writeInt16LE(v, o);
        break;
      case "u32":
        b.writeUInt32LE(v, o);
        break;
      case "i32":
        b.writeInt32LE(v, o);
        break;
      case "f32":
        b.writeFloatLE(v, o);
        break;
      case "f64":
        b.writeDoubleLE(v, o);
        break;
    }
    this.length += NUMBER_WIDTH[type];
  }

  bigint(type: GgufBigIntType, v: bigint): void {
    this.reserve(8);
    if (type === "u64") this.buf.writeBigUInt64LE(v, this.length);
    else this.buf.writeBigInt64LE(v, this.length);
    this.length += 8;
  }

  u64(v: number): void {
    this.bigint("u64", BigInt(v));
  }

  string(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.reserve(bytes.length);
    bytes.copy(this.buf, this.length);
    this.length += bytes.length;
  }

  scalar(type: GgufScalarType, v: number | bigint | boolean | string): void {
    if (type === "string") this.string(v as string);
    else if (type === "bool") this.number("u8", v ? 1 : 0);
    else if (type === "u64" || type === "i64") this.bigint(type, v as bigint);
    else this.number(type, v as number);
  }

  value(v: GgufValue): void {
    this.number("u32", TYPE_IDS[v.type]);
    if (v.type !== "array") {
      this.scalar(v.type, v.value);
      return;
    }
    this.number("u32", TYPE_IDS[v.itemType]);
    this.u64(v.value.length);
    for (const item of v.value) this.scalar(v.itemType, item);
  }

  pad(alignment: number): void {
    const n = alignUp(this.length, alignment) - this.length;
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function alignmentOf(metadata: GgufMetadata): number {
  const v = metadata.get("general.alignment");
  if (!v) return DEFAULT_ALIGNMENT;
  if (v.type !== "u32" || v.value <= 0 || v.value % 8 !== 0)
    throw new Error("general.alignment must be a u32 multiple of 8");
  return v.value;
}

/** Header bytes up to and including the padding before the data section. */
function encodeHeader(metadata: GgufMetadata, tensors: GgufTensorInfo[]): Buffer {
  const w = new Writer();
  w.number("u32", MAGIC);
  w.number("u32", VERSION);
  w.u64(tensors.length);
  w.u64(metadata.size);
  for (const [key, value] of metadata) {
    w.string(key);
    w.value(value);
  }
  for (const t of tensors) {
    w.string(t.name);
    w.number("u32", t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.number("u32", t.type);
    w.u64(t.offset);
  }
  w.pad(alignmentOf(metadata));
  return w.bytes();
}

/** IEEE half from a float, round-to-nearest-even; Node 20 has no Math.f16round. */
function toHalf(f: number): number {
  const f32 = new Float32Array([f]);
  const x = new Uint32Array(f32.buffer)[0] ?? 0;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, which is the correct rounding.
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function encodeTensor(t: GgufTensorInput): Buffer {
  const elements = t.dims.reduce((a, b) => a * b, 1);
  if (elements !== t.data.length)
    throw new Error(`tensor ${t.name}: dims ${t.dims} need ${elements} values, got ${t.data.length}`);
  if (t.type === "F32") return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const halves = new Uint16Array(t.data.length);
  for (let i = 0; i < t.data.length; i++) halves[i] = toHalf(t.data[i] ?? 0);
  return Buffer.from(halves.buffer);
}

/** Writes a complete model file. Tensor data is laid out in the given order. */
export async function writeGguf(path: string, metadata: GgufMetadata, tensors: GgufTensorInput[]): Promise<void> {
  const alignment = alignmentOf(metadata);
  const infos: GgufTensorInfo[] = [];
  let offset = 0;
  for (const t of tensors) {
    infos.push({ name: t.name, dims: t.dims, type: GGML_TYPE[t.type], offset });
    offset = alignUp(offset + tensorByteSize(infos[infos.length - 1] as GgufTensorInfo), alignment);
  }
  const header = encodeHeader(metadata, infos);
  const fh = await open(path, "w");
  try {
    await fh.write(header, 0, header.length, 0);
    for (const [i, t] of tensors.entries()) {
      const bytes = encodeTensor(t);
      await fh.write(bytes, 0, bytes.length, header.length + (infos[i]?.offset ?? 0));
    }
    // The data section ends padded (zeros), as llama.cpp's own writer does.
    await fh.truncate(header.length + offset);
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------- reading

class NeedMore extends Error {}

/** Cursor over a prefix of the file; runs out with NeedMore so the caller can
 * read a longer prefix and start again (headers are small next to the data). */
class Reader {
  offset = 0;
  constructor(private readonly buf: Buffer) {}

  private take(n: number): number {
    if (this.offset + n > this.buf.length) throw new NeedMore();
    const at = this.offset;
    this.offset += n;
    return at;
  }

  number(type: GgufNumberType): number {
    const b = this.buf;
    const o = this.take(NUMBER_WIDTH[type]);
    switch (type) {
      case "u8":
        return b.readUInt8(o);
      case "i8":
        return b.readInt8(o);
      case "u16":
        return b.readUInt16LE(o);
      case "i16":
        return b.readInt16LE(o);
      case "u32":
        return b.readUInt32LE(o);
      case "i32":
        return b.readInt32LE(o);
      case "f32":
        return b.readFloatLE(o);
      case "f64":
        return b.readDoubleLE(o);
    }
  }

  bigint(type: GgufBigIntType): bigint {
    const o = this.take(8);
    return type === "u64" ? this.buf.readBigUInt64LE(o) : this.buf.readBigInt64LE(o);
  }

  /** A u64 used as a size or offset; such values always fit a JS number here. */
  size(): number {
    const v = this.bigint("u64");
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`GGUF size ${v} is too large`);
    return Number(v);
  }

  string(): string {
    const n = this.size();
    const o = this.take(n);
    return this.buf.toString("utf8", o, o + n);
  }

  typeName(): TypeName {
    const id = this.number("u32");
    const name = TYPE_NAMES[id];
    if (!name) throw new Error(`unknown GGUF value type ${id} at byte ${this.offset - 4}`);
    return name;
  }

  value(): GgufValue {
    const type = this.typeName();
    if (type !== "array") return this.scalar(type);
    const itemType = this.typeName();
    if (itemType === "array") throw new Error("GGUF arrays of arrays are not supported");
    const n = this.size();
    switch (itemType) {
      case "string":
        return { type, itemType, value: Array.from({ length: n }, () => this.string()) };
      case "bool":
        return { type, itemType, value: Array.from({ length: n }, () => this.number("u8") !== 0) };
      case "u64":
      case "i64":
        return { type, itemType, value: Array.from({ length: n }, () => this.bigint(itemType)) };
      default:
        return { type, itemType, value: Array.from({ length: n }, () => this.number(itemType)) };
    }
  }

  scalar(type: GgufScalarType): GgufScalar {
    switch (type) {
      case "string":
        return { type, value: this.string() };
      case "bool":
        return { type, value: this.number("u8") !== 0 };
      case "u64":
      case "i64":
        return { type, value: this.bigint(type) };
      default:
        return { type, value: this.number(type) };
    }
  }
}

function parse(buf: Buffer): GgufFile {
  const r = new Reader(buf);
  if (r.number("u32") !== MAGIC) throw new Error("not a GGUF file (bad magic)");
  const version = r.number("u32");
  if (version < 2 || version > 3) throw new Error(`GGUF version ${version} is not supported`);
  const tensorCount = r.size();
  const kvCount = r.size();
  const metadata: GgufMetadata = new Map();
  for (let i = 0; i < kvCount; i++) {
    const key = r.string();
    metadata.set(key, r.value());
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = r.string();
    const dims = Array.from({ length: r.number("u32") }, () => r.size());
    const type = r.number("u32");
    tensors.push({ name, dims, type, offset: r.size() });
  }
  const alignment = alignmentOf(metadata);
  return { version, metadata, tensors, alignment, dataOffset: alignUp(r.offset, alignment) };
}

/** Metadata and tensor table; reads only as much of the file as the header needs. */
export async function readGguf(path: string): Promise<GgufFile> {
  const fh = await open(path, "r");
  try {
    const fileSize = (await fh.stat()).size;
    for (let want = 1 << 20; ; want *= 4) {
      const n = Math.min(want, fileSize);
      const buf = Buffer.alloc(n);
      await fh.read(buf, 0, n, 0);
      try {
        return parse(buf);
      } catch (e) {
        if (!(e instanceof NeedMore)) throw e;
        if (n === fileSize) throw new Error(`${path}: truncated GGUF header`);
      }
    }
  } finally {
    await fh.close();
  }
}

/** The raw bytes of one tensor. */
export async function readTensorBytes(path: string, file: GgufFile, name: string): Promise<Buffer> {
  const t = file.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`${path}: no tensor ${name}`);
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(tensorByteSize(t));
    const { bytesRead } = await fh.read(buf, 0, buf.length, file.dataOffset + t.offset);
    if (bytesRead !== buf.length) throw new Error(`${path}: tensor ${name} is truncated`);
    return buf;
  } finally {
    await fh.close();
  }
}

/** A tensor's values as floats; F32 and F16 only. */
export async function readTensor(path: string, file: GgufFile, name: string): Promise<Float32Array> {
  const bytes = await readTensorBytes(path, file, name);
  const t = file.tensors.find((x) => x.name === name) as GgufTensorInfo;
  if (t.type === GGML_TYPE.F32)
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  if (t.type === GGML_TYPE.F16) {
    const out = new Float32Array(bytes.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = fromHalf(bytes.readUInt16LE(i * 2));
    return out;
  }
  throw new Error(`tensor ${name}: type ${t.type} cannot be decoded to floats`);
}

// ---------------------------------------------------------------- patching

/** Copies `src` to `dst` with edited metadata and the tensor data byte for byte.
 * `edit` changes the map in place. Tensor offsets are relative to the data
 * section, so only the padding in front of it changes. */
export async function patchGgufMetadata(
  src: string,
  dst: string,
  edit: (metadata: GgufMetadata) => void,
): Promise<void> {
  if (src === dst) throw new Error("patchGgufMetadata needs distinct source and destination paths");
  const file = await readGguf(src);
  edit(file.metadata);
  if (alignmentOf(file.metadata) !== file.alignment)
    throw new Error("patchGgufMetadata cannot change general.alignment");
  const header = encodeHeader(file.metadata, file.tensors);
  const out = createWriteStream(dst);
  await new Promise<void>((resolve, reject) => {
    out.once("error", reject);
    out.write(header, (err) => (err ? reject(err) : resolve()));
  });
  await pipeline(createReadStream(src, { start: file.dataOffset }), out);
}
