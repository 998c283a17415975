// Request bodies: JSON objects only, with a message a person can act on.
import type { Context } from "hono";
import { invalidRequest } from "../src/openai/errors.ts";

/**
 * Deepest nesting a body may have. OpenAI's own structured-output schemas stop at 10 levels;
 * past a few thousand, JSON.stringify and any recursive walk (cache keys, grammars) overflow
 * the stack, so the limit sits far below that and far above any real request.
 */
export const MAX_JSON_DEPTH = 128;

export async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") throw invalidRequest("The request body is empty; send a JSON object.", null, "invalid_json");
  if (nestingExceeds(text, MAX_JSON_DEPTH)) {
    throw invalidRequest(
      `The JSON body is nested more than ${MAX_JSON_DEPTH} levels deep; flatten it.`,
      null,
      "invalid_json",
    );
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw invalidRequest(
      `We could not parse the JSON body of your request: ${(err as Error).message}. Send valid JSON with content-type application/json.`,
      null,
      "invalid_json",
    );
  }
}

/** Whether arrays and objects in `text` nest deeper than `limit` (brackets inside strings do not count). */
export function nestingExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      // A backslash escapes the next character; a quote ends the string.
      if (ch === 0x5c) i++;
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x5b || ch === 0x7b) {
      if (++depth > limit) return true;
    } else if (ch === 0x5d || ch === 0x7d) depth--;
  }
  return false;
}
