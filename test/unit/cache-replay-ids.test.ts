// Replayed tool calls get fresh ids of the shape the model's template takes back: OpenAI's
// `call_…` in general, 9 letters and digits where the call had one (Mistral's templates).
import { describe, expect, it } from "vitest";
import { replay } from "../../src/cache/entry.ts";
import type { ChatEvent } from "../../src/providers/provider.ts";

async function ids(id: string): Promise<string[]> {
  const events: ChatEvent[] = [
    { type: "tool_call_delta", index: 0, delta: { index: 0, id, type: "function", function: { name: "f" } } },
  ];
  const out: string[] = [];
  for await (const e of replay(events, () => "call_fresh"))
    if (e.type === "tool_call_delta" && e.delta.id) out.push(e.delta.id);
  return out;
}

describe("replayed call ids", () => {
  it("are fresh, and keep Mistral's 9-character shape", async () => {
    expect(await ids("call_0123456789abcdef01234567")).toEqual(["call_fresh"]);
    const [short] = await ids("a1B2c3D4e");
    expect(short).toMatch(/^[A-Za-z0-9]{9}$/);
    expect(short).not.toBe("a1B2c3D4e");
  });
});
