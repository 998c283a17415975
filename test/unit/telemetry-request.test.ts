import { describe, expect, it } from "vitest";
import { EventQueue } from "../../src/providers/event-queue.ts";
import type { ChatEvent, ChatStream } from "../../src/providers/provider.ts";
import type { RequestFacts } from "../../src/telemetry/record.ts";
import { RequestTelemetry } from "../../src/telemetry/request.ts";

function setup() {
  const facts: RequestFacts[] = [];
  const telemetry = new RequestTelemetry(
    "req-1",
    "Bearer k",
    () => "key_0123456789ab",
    (f) => facts.push(f),
  );
  const queue = new EventQueue<ChatEvent>();
  let completion = 0;
  const stream: ChatStream = { events: queue, usage: () => ({ promptTokens: 7, completionTokens: completion }) };
  const push = (text: string) => {
    completion++;
    queue.push({ type: "content", index: 0, text });
  };
  return { facts, telemetry, queue, stream, push };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe("RequestTelemetry", () => {
  it("notes the model and stream flag of a body it has not validated", () => {
    const { facts, telemetry } = setup();
    telemetry.requested({ model: "x".repeat(1000), stream: true }, undefined);
    telemetry.end(400, false);
    return tick().then(() => {
      expect(facts[0]?.model).toHaveLength(256);
      expect(facts[0]?.stream).toBe(true);
      expect(facts[0]?.servedModel).toBeUndefined();
    });
  });

  it("times the first and last delta, and reports final usage once", async () => {
    const { facts, telemetry, queue, stream, push } = setup();
    telemetry.requested({ model: "tiny" }, { id: "roundhouse-tiny", provider: "llama" });
    const watched = telemetry.watch(stream);
    push("a");
    await tick();
    push("b");
    queue.push({ type: "finish", index: 0, reason: "stop" });
    queue.end();
    for await (const _ of watched.events) {
      // consume
    }
    telemetry.end(200, false);
    telemetry.end(200, false);
    await tick();
    expect(facts).toHaveLength(1);
    const [f] = facts;
    expect(f).toMatchObject({ servedModel: "roundhouse-tiny", provider: "llama", status: 200 });
    expect(f?.usage).toEqual({ promptTokens: 7, completionTokens: 2 });
    expect(f?.firstDeltaMs).toBeGreaterThan(0);
    expect(f?.lastDeltaMs).toBeGreaterThan(f?.firstDeltaMs ?? 0);
    expect(f?.endMs).toBeGreaterThanOrEqual(f?.lastDeltaMs ?? 0);
  });

  it("waits for an abandoned stream to stop before reporting its usage, without holding up the consumer", async () => {
    const { facts, telemetry, queue, stream, push } = setup();
    const watched = telemetry.watch(stream);
    push("a");
    for await (const _ of watched.events) break;
    telemetry.end(200, true);
    push("b");
    await tick();
    expect(facts).toHaveLength(0);
    queue.end();
    await tick();
    expect(facts[0]).toMatchObject({ clientDisconnected: true, usage: { completionTokens: 2 } });
  });

  it("reports a stream nobody began to read at once", async () => {
    const { facts, telemetry, stream } = setup();
    telemetry.watch(stream);
    telemetry.end(500, false);
    await tick();
    expect(facts).toHaveLength(1);
  });

  it("records the error and the traffic hooks", async () => {
    const { facts, telemetry } = setup();
    const { rateLimited } = await import("../../src/openai/errors.ts");
    telemetry.failed(rateLimited(2));
    telemetry.assigned("chat", "canary");
    telemetry.cached("miss");
    telemetry.fellBack();
    telemetry.end(429, false);
    await tick();
    expect(facts[0]).toMatchObject({
      error: { type: "requests", code: "rate_limit_exceeded" },
      experiment: "chat",
      variant: "canary",
      cache: "miss",
      fallbacks: 1,
    });
  });
});
