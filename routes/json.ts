// Request bodies: JSON objects only, with a message a person can act on.
import type { Context } from "hono";
import { invalidRequest } from "../src/openai/errors.ts";

export async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") throw invalidRequest("The request body is empty; send a JSON object.", null, "invalid_json");
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
