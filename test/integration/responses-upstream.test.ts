// The Responses API in front of upstreams (issue #20, item 4): to an upstream that serves
// /v1/responses itself the request passes through as sent, streamed or not, and its answer comes
// back as it sent it (and is stored here, so retrieval and continuation work as for any
// response); to one that serves only chat completions it is translated, and which one an
// upstream is (`responses: auto`) is found out once. Through the official client.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeUpstream, RESPONSES_PIECES, startFakeUpstream } from "../helpers/fake-upstream.ts";
import { startServer, type TestServer, tinyConfig } from "../helpers/server.ts";

let s: TestServer;
let native: FakeUpstream;
let chatOnly: FakeUpstream;

beforeAll(async () => {
  native = await startFakeUpstream({ responses: true });
  chatOnly = await startFakeUpstream();
  const upstreams = `
  - id: gpt-up
    provider: openai
    base_url: ${native.baseUrl}
    model: gpt-4.1-mini
    retries: 0
  - id: chat-up
    provider: openai
    base_url: ${chatOnly.baseUrl}
    retries: 0`;
  s = await startServer({ config: tinyConfig().concat(upstreams) });
});
afterAll(async () => {
  await s?.close();
  await native?.close();
  await chatOnly?.close();
});

const client = () => new OpenAI({ baseURL: s.baseURL, apiKey: "unused", maxRetries: 0 });
const text = RESPONSES_PIECES.join("");
const lastBody = (up: FakeUpstream, path: string) =>
  up.requests.filter((r) => r.path.endsWith(path)).at(-1)?.body as Record<string, unknown>;

describe("an upstream that serves /v1/responses", () => {
  it("gets the request as sent, built-in tools and reasoning included, under its own model name", async () => {
    const response = await client().responses.create({
      model: "gpt-up",
      input: "Find the news.",
      instructions: "Be brief.",
      tools: [{ type: "web_search" }],
      reasoning: { effort: "low" },
      metadata: { team: "search" },
    });
    expect(response.output_text).toBe(text);
    const sent = lastBody(native, "/responses");
    expect(sent).toMatchObject({
      model: "gpt-4.1-mini",
      input: "Find the news.",
      instructions: "Be brief.",
      tools: [{ type: "web_search" }],
      reasoning: { effort: "low" },
      metadata: { team: "search" },
    });
    // Its answer, as it sent it, is the client's, and is stored here too.
    const stored = await client().responses.retrieve(response.id);
    expect(stored).toEqual(JSON.parse(JSON.stringify(response)));
    const items = await client().responses.inputItems.list(response.id);
    expect(items.data).toHaveLength(1);
    expect(items.data[0]).toMatchObject({ type: "message", role: "user" });
  });

  it("streams its events through unchanged, in its order, and the SDK's stream helper accepts them", async () => {
    const before = native.requests.length;
    const stream = client().responses.stream({ model: "gpt-up", input: "Hi" });
    const seen: { type: string; sequence_number: number }[] = [];
    for await (const event of stream) seen.push({ type: event.type, sequence_number: event.sequence_number });
    const final = await stream.finalResponse();
    expect(final.output_text).toBe(text);
    expect(native.requests.length).toBe(before + 1);
    expect(lastBody(native, "/responses").stream).toBe(true);
    expect(seen.map((e) => e.sequence_number)).toEqual(seen.map((_, i) => i));
    expect(seen.map((e) => e.type)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      ...RESPONSES_PIECES.map(() => "response.output_text.delta"),
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect((await client().responses.retrieve(final.id)).output_text).toBe(text);
  });

  it("continues its own response by its id; one another model answered, with the conversation itself", async () => {
    const first = await client().responses.create({ model: "gpt-up", input: "My name is Ada." });
    await client().responses.create({ model: "gpt-up", input: "What is my name?", previous_response_id: first.id });
    expect(lastBody(native, "/responses")).toMatchObject({ previous_response_id: first.id, input: "What is my name?" });

    // Started on the local model: the upstream never saw it, so it gets the whole conversation.
    const local = await client().responses.create({ model: "tiny", input: "My name is Ada.", max_output_tokens: 4 });
    await client().responses.create({ model: "gpt-up", input: "What is my name?", previous_response_id: local.id });
    const sent = lastBody(native, "/responses");
    expect(sent.previous_response_id).toBeUndefined();
    const input = sent.input as Record<string, unknown>[];
    expect(input.map((i) => [i.type, i.role])).toEqual([
      ["message", "user"],
      ["message", "assistant"],
      ["message", "user"],
    ]);
    expect(input.every((i) => i.id === undefined)).toBe(true);
    expect(input[2]?.content).toBe("What is my name?");
  });

  it("counts its usage as it reported it", async () => {
    const res = await fetch(`${s.url}/admin/usage?group_by=model`);
    const groups = (
      (await res.json()) as {
        data: { group: string; requests: number; prompt_tokens: number; completion_tokens: number }[];
      }
    ).data;
    const up = groups.find((g) => g.group === "gpt-up");
    expect(up?.requests).toBeGreaterThanOrEqual(5);
    expect(up?.prompt_tokens).toBe(13 * (up?.requests ?? 0));
    expect(up?.completion_tokens).toBe(RESPONSES_PIECES.length * (up?.requests ?? 0));
  });
});

describe("an upstream that serves chat completions only", () => {
  it("is found out once (its 404), then gets the request translated onto chat", async () => {
    const first = await client().responses.create({ model: "chat-up", input: "Hi" });
    expect(first.output_text).toBe("Hello from upstream!");
    expect(chatOnly.requests.map((r) => r.path)).toEqual(["/v1/responses", "/v1/chat/completions"]);
    const again = await client().responses.create({ model: "chat-up", input: "Hi again", stream: false });
    expect(again.output_text).toBe("Hello from upstream!");
    expect(chatOnly.requests.map((r) => r.path).slice(2)).toEqual(["/v1/chat/completions"]);
    // What translation cannot carry is refused once it is known to be translated.
    const err = await client()
      .responses.create({ model: "chat-up", input: "Hi", tools: [{ type: "web_search" }] })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 400, param: "tools[0].type" });
  });
});
