// Fine-tuning datasets: OpenAI's chat JSONL format, validated line by line at upload
// (the first bad line is named with the reason), and rendered into the text
// llama-finetune trains on, in the same form as the built-in model's corpus: each
// example through the model's own chat template, prefixed with the BOS text.

export const DATASET_LIMITS = {
  /** Lines (examples) per file. */
  maxExamples: 50_000,
  /** Characters in one line. */
  maxLineChars: 64 * 1024,
  /** Messages in one example. */
  maxMessages: 256,
} as const;

export const ROLES = ["system", "developer", "user", "assistant", "tool"] as const;
export type Role = (typeof ROLES)[number];

export interface ExampleMessage {
  role: Role;
  content: string;
}

export interface Example {
  messages: ExampleMessage[];
}

export type DatasetCheck = { ok: true; examples: Example[] } | { ok: false; line: number; reason: string };

const MESSAGE_KEYS = new Set(["role", "content", "name"]);

/** Parses and checks a whole JSONL file; stops at the first bad line. Blank lines are skipped. */
export function parseDataset(text: string): DatasetCheck {
  const lines = text.split("\n");
  const examples: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).replace(/\r$/, "");
    if (raw.trim() === "") continue;
    const result = parseExample(raw);
    if (typeof result === "string") return { ok: false, line: i + 1, reason: result };
    examples.push(result);
    if (examples.length > DATASET_LIMITS.maxExamples) {
      return { ok: false, line: i + 1, reason: `more than ${DATASET_LIMITS.maxExamples} examples in one file` };
    }
  }
  if (examples.length === 0) return { ok: false, line: 1, reason: "the file holds no examples" };
  return { ok: true, examples };
}

export type LinesCheck = { ok: true; examples: number } | { ok: false; line: number; reason: string };

/**
 * The same checks as parseDataset over lines as they are read from a file, keeping no example:
 * memory stays at one line whatever the file's size. A line past maxLineChars arrives cut
 * (see FileStore), which parseExample refuses for its length.
 */
export async function checkDatasetLines(lines: AsyncIterable<string>): Promise<LinesCheck> {
  let n = 0;
  let examples = 0;
  for await (const line of lines) {
    n++;
    const raw = line.replace(/\r$/, "");
    if (raw.trim() === "") continue;
    const result = parseExample(raw);
    if (typeof result === "string") return { ok: false, line: n, reason: result };
    if (++examples > DATASET_LIMITS.maxExamples) {
      return { ok: false, line: n, reason: `more than ${DATASET_LIMITS.maxExamples} examples in one file` };
    }
  }
  if (examples === 0) return { ok: false, line: 1, reason: "the file holds no examples" };
  return { ok: true, examples };
}

/** One line → an example, or the reason it is not one. */
export function parseExample(line: string): Example | string {
  if (line.length > DATASET_LIMITS.maxLineChars) {
    return `the line is ${line.length} characters long; at most ${DATASET_LIMITS.maxLineChars} are allowed`;
  }
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return `not valid JSON (${(err as Error).message})`;
  }
  if (!isObject(value)) return "expected a JSON object with a `messages` array";
  for (const key of Object.keys(value)) {
    if (key !== "messages") return `unsupported key \`${key}\`; only \`messages\` (chat format) is supported`;
  }
  const messages = value.messages;
  if (!Array.isArray(messages)) return "`messages` must be an array";
  if (messages.length === 0) return "`messages` is empty";
  if (messages.length > DATASET_LIMITS.maxMessages) {
    return `${messages.length} messages; at most ${DATASET_LIMITS.maxMessages} are allowed`;
  }
  const out: ExampleMessage[] = [];
  for (let j = 0; j < messages.length; j++) {
    const m: unknown = messages[j];
    const where = `messages[${j}]`;
    if (!isObject(m)) return `${where} must be an object with \`role\` and \`content\``;
    for (const key of Object.keys(m)) {
      if (!MESSAGE_KEYS.has(key)) return `${where} has unsupported key \`${key}\``;
    }
    if (typeof m.role !== "string" || !(ROLES as readonly string[]).includes(m.role)) {
      return `${where}.role must be one of ${ROLES.join(", ")}, got ${JSON.stringify(m.role ?? null)}`;
    }
    const content = contentText(m.content);
    if (content === undefined) {
      return `${where}.content must be a string or an array of {"type": "text", "text": …} parts`;
    }
    out.push({ role: m.role as Role, content });
  }
  if (!out.some((m) => m.role === "assistant")) return "no assistant message: there is nothing to learn";
  return { messages: out };
}

function contentText(content: unknown): string | undefined {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return undefined;
  let text = "";
  for (const part of content) {
    if (!isObject(part) || part.type !== "text" || typeof part.text !== "string") return undefined;
    text += part.text;
  }
  return text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export interface RenderOptions {
  /** Renders one conversation with the model's chat template, no generation prompt. */
  render: (messages: readonly ExampleMessage[]) => string;
  /** The BOS token's text (`<s>`), put before each example unless the template emits it. */
  bos: string;
  /** Example order is shuffled with this seed: llama-finetune reads its text in order. */
  seed: number;
}

/** The training text: every example rendered with the template, in seeded shuffled order. */
export function renderDataset(examples: readonly Example[], opts: RenderOptions): string {
  const order = shuffle([...examples], opts.seed);
  return order
    .map((e) => {
      const text = opts.render(e.messages);
      return opts.bos !== "" && !text.startsWith(opts.bos) ? opts.bos + text : text;
    })
    .join("");
}

/** Fisher–Yates with mulberry32: the same seed gives the same order on every machine. */
export function shuffle<T>(items: T[], seed: number): T[] {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}
