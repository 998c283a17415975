// Object ids of the files and fine-tuning APIs. Ids become file names under DATA_DIR,
// so every id taken from a request is checked against its strict pattern first: no
// id can contain a path separator or a dot and reach outside its folder.
import { randomBytes } from "node:crypto";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

export function randomToken(length: number): string {
  const bytes = randomBytes(length * 2);
  let out = "";
  // Rejection sampling keeps every character equally likely (256 is not a multiple of 62).
  for (let i = 0; i < bytes.length && out.length < length; i++) {
    const b = bytes[i] as number;
    if (b < 248) out += ALPHABET[b % 62];
  }
  return out.length === length ? out : randomToken(length);
}

export const ID_PATTERNS = {
  file: /^file-[A-Za-z0-9]{24}$/,
  job: /^ftjob-[A-Za-z0-9]{24}$/,
  event: /^ftevent-[A-Za-z0-9]{24}$/,
  checkpoint: /^ftckpt-[A-Za-z0-9]{24}$/,
} as const;

export type IdKind = keyof typeof ID_PATTERNS;
const PREFIX: Record<IdKind, string> = { file: "file-", job: "ftjob-", event: "ftevent-", checkpoint: "ftckpt-" };

export function newId(kind: IdKind): string {
  return PREFIX[kind] + randomToken(24);
}

export function isId(kind: IdKind, value: string): boolean {
  return ID_PATTERNS[kind].test(value);
}
