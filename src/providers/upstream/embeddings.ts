// An upstream's embeddings answer, read back into vectors whichever encoding it came in
// (the client's encoding_format is passed on, so base64 saves the upstream and this proxy the
// float text), checked just enough that a broken answer is a 502 rather than wrong vectors.
import { z } from "zod";

const UpstreamEmbeddings = z.looseObject({
  data: z.array(z.looseObject({ index: z.int().min(0), embedding: z.union([z.array(z.number()), z.string()]) })),
  usage: z.looseObject({ prompt_tokens: z.int().min(0) }).nullish(),
});

export type ParsedEmbeddings =
  | { kind: "ok"; vectors: number[][]; promptTokens: number }
  | { kind: "invalid"; problem: string };

export function parseEmbeddings(text: string): ParsedEmbeddings {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { kind: "invalid", problem: "a body that is not JSON" };
  }
  const parsed = UpstreamEmbeddings.safeParse(json);
  if (!parsed.success) return { kind: "invalid", problem: "an embeddings answer without data[].embedding" };
  const vectors: number[][] = [];
  for (const item of parsed.data.data) {
    vectors[item.index] = typeof item.embedding === "string" ? fromBase64(item.embedding) : item.embedding;
  }
  // A hole (an index skipped) is invisible to some(): count the filled places instead.
  if (vectors.length !== parsed.data.data.length || Object.keys(vectors).length !== vectors.length) {
    return { kind: "invalid", problem: "an embeddings answer whose indexes do not count from 0" };
  }
  return { kind: "ok", vectors, promptTokens: parsed.data.usage?.prompt_tokens ?? 0 };
}

function fromBase64(text: string): number[] {
  const bytes = Buffer.from(text, "base64");
  const out: number[] = new Array(Math.floor(bytes.length / 4));
  for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}
