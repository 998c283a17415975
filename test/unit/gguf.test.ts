import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  GGML_TYPE,
  type GgufMetadata,
  type GgufTensorInput,
  gguf,
  patchGgufMetadata,
  readGguf,
  readTensor,
  readTensorBytes,
  writeGguf,
} from "../../src/engine/gguf.ts";

const dir = mkdtempSync(join(tmpdir(), "gguf-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// One key per value type and per array item type, with edge values that a wrong
// width or signedness would corrupt.
function everyType(): GgufMetadata {
  return new Map([
    ["general.architecture", gguf.string("llama")],
    ["t.u8", gguf.u8(255)],
    ["t.i8", gguf.i8(-128)],
    ["t.u16", gguf.u16(65535)],
    ["t.i16", gguf.i16(-32768)],
    ["t.u32", gguf.u32(4294967295)],
    ["t.i32", gguf.i32(-2147483648)],
    ["t.f32", gguf.f32(1.5)],
    ["t.f64", gguf.f64(Math.PI)],
    ["t.u64", gguf.u64(18446744073709551615n)],
    ["t.i64", gguf.i64(-9223372036854775808n)],
    ["t.bool.true", gguf.bool(true)],
    ["t.bool.false", gguf.bool(false)],
    ["t.string.utf8", gguf.string("héllo ▁wörld 🚂 {% if x %}\n")],
    ["t.string.empty", gguf.string("")],
    ["a.u8", gguf.numbers("u8", [0, 1, 255])],
    ["a.i8", gguf.numbers("i8", [-128, 0, 127])],
    ["a.u16", gguf.numbers("u16", [0, 65535])],
    ["a.i16", gguf.numbers("i16", [-32768, 32767])],
    ["a.u32", gguf.numbers("u32", [0, 4294967295])],
    ["a.i32", gguf.numbers("i32", [-2147483648, 2147483647, 1, 2, 6])],
    ["a.f32", gguf.numbers("f32", [-0.25, 0, 1.125, -1000])],
    ["a.f64", gguf.numbers("f64", [Math.E, -1e300])],
    ["a.u64", gguf.bigints("u64", [0n, 2n ** 64n - 1n])],
    ["a.i64", gguf.bigints("i64", [-(2n ** 63n), 2n ** 63n - 1n])],
    ["a.bool", gguf.bools([true, false, true])],
    ["a.string", gguf.strings(["<unk>", "<s>", "▁the", "", "<0x0A>"])],
    ["a.empty.string", gguf.strings([])],
    ["a.empty.f32", gguf.numbers("f32", [])],
  ]);
}

const seq = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));

// Sizes chosen so the tensors do not end on a 32-byte boundary and need padding.
const tensors: GgufTensorInput[] = [
  { name: "a.weight", dims: [3, 5], type: "F32", data: seq(15, (i) => i * 0.1 - 0.7) },
  // F16 values that are exact in half precision, including subnormal and rounding cases.
  { name: "b.weight", dims: [7], type: "F16", data: Float32Array.from([0, -2, 0.5, 65504, 2 ** -24, 1 / 3, -1e-8]) },
  { name: "c.weight", dims: [32, 2, 1], type: "F32", data: seq(64, (i) => Math.sin(i)) },
];

describe("gguf", () => {
  const path = join(dir, "model.gguf");

  it("round-trips every metadata value type, in order", async () => {
    await writeGguf(path, everyType(), tensors);
    const file = await readGguf(path);
    expect(file.version).toBe(3);
    expect([...file.metadata.keys()]).toEqual([...everyType().keys()]);
    expect(file.metadata).toEqual(everyType());
  });

  it("round-trips tensor infos and data with 32-byte alignment", async () => {
    await writeGguf(path, everyType(), tensors);
    const file = await readGguf(path);
    expect(file.tensors.map((t) => [t.name, t.dims, t.type])).toEqual([
      ["a.weight", [3, 5], GGML_TYPE.F32],
      ["b.weight", [7], GGML_TYPE.F16],
      ["c.weight", [32, 2, 1], GGML_TYPE.F32],
    ]);
    expect(file.dataOffset % 32).toBe(0);
    for (const t of file.tensors) expect(t.offset % 32).toBe(0);
    expect(statSync(path).size).toBe(file.dataOffset + (file.tensors[2]?.offset ?? 0) + 256);

    expect(await readTensor(path, file, "a.weight")).toEqual(Float32Array.from(tensors[0]?.data ?? []));
    expect(await readTensor(path, file, "c.weight")).toEqual(Float32Array.from(tensors[2]?.data ?? []));
    const half = await readTensor(path, file, "b.weight");
    expect(Array.from(half.slice(0, 5))).toEqual([0, -2, 0.5, 65504, 2 ** -24]);
    expect(half[5]).toBeCloseTo(1 / 3, 3); // nearest half: 0.333251953125
    expect(half[6]).toBe(-0); // underflows to signed zero
  });

  it("reads headers larger than the first read", async () => {
    const big = join(dir, "big.gguf");
    const tokens = Array.from({ length: 60_000 }, (_, i) => `token-${i}-${"x".repeat(i % 40)}`);
    await writeGguf(big, new Map([["tokenizer.ggml.tokens", gguf.strings(tokens)]]), tensors.slice(0, 1));
    const file = await readGguf(big);
    expect(file.dataOffset).toBeGreaterThan(1 << 20);
    expect(file.metadata.get("tokenizer.ggml.tokens")?.value).toEqual(tokens);
    expect(await readTensor(big, file, "a.weight")).toEqual(tensors[0]?.data);
  });

  it("patches metadata and copies tensor bytes unchanged", async () => {
    await writeGguf(path, everyType(), tensors);
    const patched = join(dir, "patched.gguf");
    await patchGgufMetadata(path, patched, (m) => {
      m.delete("t.i8");
      m.set("t.u32", gguf.u32(7));
      m.set("tokenizer.chat_template", gguf.string("{{ messages }}".repeat(3))); // shifts the padding
    });
    const before = await readGguf(path);
    const after = await readGguf(patched);
    expect(after.metadata.has("t.i8")).toBe(false);
    expect(after.metadata.get("t.u32")).toEqual(gguf.u32(7));
    expect(after.metadata.get("tokenizer.chat_template")?.value).toBe("{{ messages }}{{ messages }}{{ messages }}");
    expect(after.metadata.get("a.string")).toEqual(before.metadata.get("a.string"));
    expect(after.tensors).toEqual(before.tensors);
    expect(after.dataOffset).not.toBe(before.dataOffset);
    expect(readFileSync(patched).subarray(after.dataOffset)).toEqual(readFileSync(path).subarray(before.dataOffset));
    for (const t of before.tensors) {
      expect(await readTensorBytes(patched, after, t.name)).toEqual(await readTensorBytes(path, before, t.name));
    }
  });

  it("rejects what it cannot represent", async () => {
    const bad = join(dir, "bad.gguf");
    writeFileSync(bad, Buffer.from("GGML0000000000000000000000"));
    await expect(readGguf(bad)).rejects.toThrow(/bad magic/);
    await expect(
      writeGguf(bad, new Map(), [{ name: "x", dims: [4], type: "F32", data: new Float32Array(3) }]),
    ).rejects.toThrow(/need 4 values/);
    writeFileSync(bad, readFileSync(path).subarray(0, 100));
    await expect(readGguf(bad)).rejects.toThrow(/truncated/);
  });
});
