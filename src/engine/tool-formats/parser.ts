// Reads a model's output as it streams, in its family's own tool-call and reasoning syntax, and
// turns it into events: content, reasoning, the start of a call (its name), pieces of its
// arguments, the end of a call. Pure and incremental: text may arrive split at any point (a
// marker across two tokens, a name across three), and nothing that may still turn out to be part
// of a marker is ever given out as content. One parser per choice.
import type { ToolFamily } from "./families.ts";

export type ParseEvent =
  | { type: "content"; text: string }
  | { type: "reasoning"; text: string }
  /** A call began; `index` counts the calls of this reply from 0. */
  | { type: "call"; index: number; name: string }
  | { type: "arguments"; index: number; text: string }
  | { type: "call_end"; index: number }
  /**
   * From here on the output may be constrained (a lazy grammar): `scope` "call" for the body of a
   * JSON call object (name and arguments), "arguments" for the arguments of the named tool.
   * `after` is the text that followed the trigger in the same push, already consumed.
   */
  | { type: "constrain"; scope: "call" | "arguments"; name?: string; after: string }
  /** The constrained part ended: sampling is free again. */
  | { type: "release" };

export interface ParserOptions {
  /** Whether tool calls are parsed at all (no tools in the request: every marker is content). */
  tools: boolean;
  /** The prompt ended inside a reasoning block (a template that opens `<think>` itself). */
  startInReasoning?: boolean;
}

const THINK_OPEN = "<think>";
const THINK_CLOSE = "</think>";

// DeepSeek's markers use fullwidth bars and U+2581 (what its tokenizer shows for a space).
const DS_CALLS_BEGIN = "<\uFF5Ctool\u2581calls\u2581begin\uFF5C>";
const DS_CALLS_END = "<\uFF5Ctool\u2581calls\u2581end\uFF5C>";
const DS_CALL_BEGIN = "<\uFF5Ctool\u2581call\u2581begin\uFF5C>";
const DS_CALL_END = "<\uFF5Ctool\u2581call\u2581end\uFF5C>";
const DS_SEP = "<\uFF5Ctool\u2581sep\uFF5C>";

export const MARKERS = {
  hermes: { open: "<tool_call>", close: "</tool_call>" },
  llama3: { pythonTag: "<|python_tag|>", eom: "<|eom_id|>" },
  mistral: { calls: "[TOOL_CALLS]", args: "[ARGS]", callId: "[CALL_ID]" },
  deepseek: {
    callsBegin: DS_CALLS_BEGIN,
    callsEnd: DS_CALLS_END,
    callBegin: DS_CALL_BEGIN,
    callEnd: DS_CALL_END,
    sep: DS_SEP,
  },
  harmony: {
    start: "<|start|>",
    channel: "<|channel|>",
    message: "<|message|>",
    end: "<|end|>",
    call: "<|call|>",
    return: "<|return|>",
    constrain: "<|constrain|>",
  },
} as const;

/** Where `marker` could begin at the end of `text` (a proper prefix of it ends `text`), else -1. */
function partialAt(text: string, markers: readonly string[]): number {
  let best = -1;
  for (const m of markers) {
    for (let len = Math.min(m.length - 1, text.length); len > 0; len--) {
      if (text.endsWith(m.slice(0, len))) {
        const at = text.length - len;
        if (best === -1 || at < best) best = at;
        break;
      }
    }
  }
  return best;
}

/** The earliest whole marker in `text`. */
function firstMarker(text: string, markers: readonly string[]): { at: number; marker: string } | undefined {
  let found: { at: number; marker: string } | undefined;
  for (const m of markers) {
    const at = text.indexOf(m);
    if (at !== -1 && (!found || at < found.at || (at === found.at && m.length > found.marker.length))) {
      found = { at, marker: m };
    }
  }
  return found;
}

/**
 * Follows one JSON value as it streams: how far it has got, and where it ends. It checks
 * nesting and strings only; the grammar (or the client) checks the rest.
 */
class JsonValueScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;
  private started = false;
  /** A scalar (number, literal) ends at the first character that cannot continue it. */
  private scalar = false;
  done = false;

  /** Feeds characters; returns how many belong to the value (all of them unless it ended). */
  feed(text: string): number {
    for (let i = 0; i < text.length; i++) {
      const c = text[i] as string;
      if (!this.started) {
        if (/\s/.test(c)) continue;
        this.started = true;
        if (c === "{" || c === "[") this.depth = 1;
        else if (c === '"') this.inString = true;
        else this.scalar = true;
        continue;
      }
      if (this.scalar) {
        if (/[\s,}\]]/.test(c)) {
          this.done = true;
          return i;
        }
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === "\\") this.escaped = true;
        else if (c === '"') {
          this.inString = false;
          if (this.depth === 0) {
            this.done = true;
            return i + 1;
          }
        }
        continue;
      }
      if (c === '"') this.inString = true;
      else if (c === "{" || c === "[") this.depth++;
      else if (c === "}" || c === "]") {
        this.depth--;
        if (this.depth === 0) {
          this.done = true;
          return i + 1;
        }
      }
    }
    return text.length;
  }

  /** A scalar at the very end of the output ends there. */
  get startedScalar(): boolean {
    return this.scalar;
  }
}

const NAME_KEYS = new Set(["name"]);
const ARG_KEYS = new Set(["arguments", "parameters"]);

/**
 * One call written as a JSON object, `{"name": "f", "arguments": {...}}` (Hermes, Qwen, Llama's
 * `parameters`, Mistral's array items, with extra keys such as `id` or `type` skipped). The
 * arguments stream as they come once the name is known; when they come before the name they are
 * held until it is.
 */
class JsonCallReader {
  private state: "open" | "key" | "colon" | "value" | "after" | "done" = "open";
  private keyBuf = "";
  private key = "";
  private value: JsonValueScanner | undefined;
  private valueText = "";
  name: string | undefined;
  private argsHeld = "";
  private argsStreaming = false;
  private argsIsString = false;
  argsSeen = false;

  constructor(private readonly out: (e: { kind: "name"; name: string } | { kind: "args"; text: string }) => void) {}

  get done(): boolean {
    return this.state === "done";
  }

  /** Feeds text; returns how much it used (the rest follows the object). */
  feed(text: string): number {
    let i = 0;
    while (i < text.length && this.state !== "done") {
      const c = text[i] as string;
      switch (this.state) {
        case "open":
          if (c === "{") this.state = "key";
          else if (!/\s/.test(c)) throw new NotACall();
          i++;
          break;
        case "key":
          if (this.keyBuf === "") {
            if (/\s|,/.test(c)) {
              i++;
              break;
            }
            if (c === "}") {
              this.state = "done";
              i++;
              break;
            }
            if (c !== '"') throw new NotACall();
            this.keyBuf = '"';
            i++;
            break;
          }
          this.keyBuf += c;
          i++;
          if (c === '"' && !this.keyBuf.endsWith('\\"')) {
            this.key = JSON.parse(this.keyBuf) as string;
            this.keyBuf = "";
            this.state = "colon";
          }
          break;
        case "colon":
          if (c === ":") this.state = "value";
          else if (!/\s/.test(c)) throw new NotACall();
          i++;
          break;
        case "value": {
          if (!this.value) {
            if (/\s/.test(c)) {
              i++;
              break;
            }
            this.value = new JsonValueScanner();
            this.valueText = "";
            if (ARG_KEYS.has(this.key)) {
              this.argsSeen = true;
              this.argsIsString = c === '"';
              this.argsStreaming = this.name !== undefined && !this.argsIsString;
            }
          }
          const used = this.value.feed(text.slice(i));
          const piece = text.slice(i, i + used);
          i += used;
          this.valueText += piece;
          if (ARG_KEYS.has(this.key) && !this.argsIsString) {
            if (this.argsStreaming) {
              if (piece) this.out({ kind: "args", text: piece });
            } else this.argsHeld += piece;
          }
          if (this.value.done) this.endValue();
          break;
        }
        case "after":
          if (c === ",") this.state = "key";
          else if (c === "}") this.state = "done";
          else if (!/\s/.test(c)) throw new NotACall();
          i++;
          break;
      }
    }
    return i;
  }

  private endValue(): void {
    const text = this.valueText;
    if (NAME_KEYS.has(this.key)) {
      const name = JSON.parse(text) as unknown;
      if (typeof name !== "string") throw new NotACall();
      this.name = name;
      this.out({ kind: "name", name });
      if (this.argsHeld) {
        this.out({ kind: "args", text: this.argsHeld });
        this.argsHeld = "";
      }
    } else if (ARG_KEYS.has(this.key) && this.argsIsString) {
      // Some models write the arguments as a JSON string of JSON: give out what it holds.
      const inner = JSON.parse(text) as string;
      if (this.name !== undefined) this.out({ kind: "args", text: inner });
      else this.argsHeld = inner;
    }
    this.value = undefined;
    this.state = "after";
  }

  /** The output ended inside the object: a scalar value at the very end is complete. */
  finish(): void {
    if (this.value?.startedScalar && this.state === "value") this.endValue();
  }
}

class NotACall extends Error {}

type Mode =
  | { kind: "text" }
  | { kind: "reasoning" }
  /** Hermes / Qwen: inside `<tool_call>`, reading the JSON object, then `</tool_call>`. */
  | { kind: "hermes"; reader: JsonCallReader }
  | { kind: "hermes-close" }
  /** Llama 3.x: a JSON call object (after `<|python_tag|>` or at the very start). */
  | { kind: "llama-json"; reader: JsonCallReader }
  | { kind: "llama-probe" }
  | { kind: "llama-between" }
  /** Mistral: after `[TOOL_CALLS]`, either a JSON array of calls or `name[ARGS]{...}`. */
  | { kind: "mistral-start" }
  | { kind: "mistral-array"; reader: JsonCallReader | undefined }
  | { kind: "mistral-name"; name: string }
  | { kind: "raw-json-args"; scanner: JsonValueScanner; next: Mode }
  /** DeepSeek: between calls of a `<｜tool▁calls▁begin｜>` block, or in one call's header. */
  | { kind: "ds-calls" }
  | { kind: "ds-header"; text: string }
  | { kind: "ds-fn-name"; text: string }
  | { kind: "ds-args"; fenced: boolean }
  | { kind: "ds-call-end" }
  /** Harmony: reading a header up to `<|message|>`, then a message body. */
  | { kind: "harmony-header"; text: string }
  | { kind: "harmony-body"; channel: "analysis" | "final" | "commentary" | "call" };

export class ToolOutputParser {
  private buf = "";
  private mode: Mode;
  private calls = 0;
  private openCall: number | undefined;
  /** Only whitespace (or nothing) has been output as content so far in this reply. */
  private atStart = true;
  /** Content right after reasoning or a call starts without the whitespace the model put there. */
  private trimNext = false;
  private readonly events: ParseEvent[] = [];

  constructor(
    readonly family: ToolFamily,
    private readonly options: ParserOptions,
  ) {
    if (family === "harmony") this.mode = { kind: "harmony-header", text: "" };
    else if (options.startInReasoning && thinks(family)) this.mode = { kind: "reasoning" };
    else this.mode = { kind: "text" };
  }

  /** The calls begun so far. */
  get callCount(): number {
    return this.calls;
  }

  push(text: string): ParseEvent[] {
    this.buf += text;
    this.run(false);
    return this.events.splice(0);
  }

  /**
   * The output ended: an open call is closed, and what was held back as a possible marker is
   * given out, unless the output was `cut` (max_tokens), when it may be the start of a call.
   */
  finish(cut = false): ParseEvent[] {
    if (cut) this.cut = true;
    this.run(true);
    return this.events.splice(0);
  }

  private cut = false;

  private run(final: boolean): void {
    for (;;) {
      const before = this.buf.length;
      const modeBefore = this.mode;
      this.step(final && !this.cut);
      if (this.buf.length === before && this.mode === modeBefore) break;
    }
    if (final) this.end();
  }

  private end(): void {
    if (this.cut) this.buf = "";
    const m = this.mode;
    if (m.kind === "hermes" || m.kind === "llama-json") m.reader.finish();
    if (m.kind === "mistral-array" && m.reader) m.reader.finish();
    // What remains was held back as a possible marker; the output ended, so it is what it is.
    const rest = this.buf;
    this.buf = "";
    if (this.openCall !== undefined) {
      this.closeCall();
    } else if (m.kind === "reasoning" || (m.kind === "harmony-body" && m.channel === "analysis")) {
      if (rest) this.emitReasoning(rest);
    } else if (m.kind === "text" || m.kind === "llama-probe" || (m.kind === "harmony-body" && m.channel !== "call")) {
      if (rest) this.emitContent(rest);
    } else if (m.kind === "harmony-header" && m.text === "" && rest) {
      this.emitContent(rest);
    }
    // Anything else was an unfinished marker or call header: never content.
    this.mode = { kind: "text" };
  }

  private emitContent(text: string): void {
    let t = text;
    if (this.trimNext || this.atStart) {
      if (this.trimNext) t = t.replace(/^\s+/, "");
      if (t === "") return;
      this.trimNext = false;
    }
    if (t === "") return;
    if (/\S/.test(t)) this.atStart = false;
    const last = this.events.at(-1);
    if (last?.type === "content") last.text += t;
    else this.events.push({ type: "content", text: t });
  }

  private emitReasoning(text: string): void {
    if (text === "") return;
    const last = this.events.at(-1);
    if (last?.type === "reasoning") last.text += text;
    else this.events.push({ type: "reasoning", text });
  }

  private startCall(name: string): void {
    const index = this.calls++;
    this.openCall = index;
    this.events.push({ type: "call", index, name });
  }

  private emitArgs(text: string): void {
    if (this.openCall === undefined || text === "") return;
    const last = this.events.at(-1);
    if (last?.type === "arguments" && last.index === this.openCall) last.text += text;
    else this.events.push({ type: "arguments", index: this.openCall, text });
    if (this.argsScanner) {
      this.argsScanner.feed(text);
      if (this.argsScanner.done) this.release();
    }
  }

  private closeCall(): void {
    if (this.openCall === undefined) return;
    this.events.push({ type: "call_end", index: this.openCall });
    this.openCall = undefined;
    this.trimNext = true;
  }

  /** A constrained part is open (a release is due). */
  private constrained = false;
  /** Follows the arguments of an "arguments"-scoped constraint, to release it where they end. */
  private argsScanner: JsonValueScanner | undefined;

  private release(): void {
    if (!this.constrained) return;
    this.constrained = false;
    this.argsScanner = undefined;
    this.events.push({ type: "release" });
  }

  private constrain(scope: "call" | "arguments", after: string, name?: string): void {
    this.constrained = true;
    this.argsScanner = scope === "arguments" ? new JsonValueScanner() : undefined;
    this.events.push(
      name === undefined ? { type: "constrain", scope, after } : { type: "constrain", scope, name, after },
    );
  }

  /** Text up to the first of `markers`; holds back a possible partial marker at the end. */
  private scan(
    markers: readonly string[],
    final: boolean,
    emit: (text: string) => void,
  ): { marker: string; after: string } | undefined {
    const hit = firstMarker(this.buf, markers);
    if (hit) {
      emit(this.buf.slice(0, hit.at));
      this.buf = this.buf.slice(hit.at + hit.marker.length);
      return { marker: hit.marker, after: this.buf };
    }
    const hold = final ? -1 : partialAt(this.buf, markers);
    const upto = hold === -1 ? this.buf.length : hold;
    emit(this.buf.slice(0, upto));
    this.buf = this.buf.slice(upto);
    return undefined;
  }

  private callOpeners(): string[] {
    if (!this.options.tools) return [];
    switch (this.family) {
      case "hermes":
      case "qwen3":
        return [MARKERS.hermes.open];
      case "llama3":
        return [MARKERS.llama3.pythonTag];
      case "mistral":
        return [MARKERS.mistral.calls];
      case "deepseek-r1":
        return [DS_CALLS_BEGIN, DS_CALL_BEGIN];
      default:
        return [];
    }
  }

  private step(final: boolean): void {
    const m = this.mode;
    switch (m.kind) {
      case "text": {
        if (this.family === "llama3" && this.options.tools && this.atStart && this.calls === 0) {
          const lead = this.buf.replace(/^\s+/, "");
          if (lead.startsWith("{")) {
            this.mode = { kind: "llama-probe" };
            return;
          }
          if (lead === "" && !final) return;
        }
        const openers = [...this.callOpeners(), ...(thinks(this.family) ? [THINK_OPEN] : [])];
        const hit = this.scan(openers, final, (t) => this.emitContent(t));
        if (!hit) return;
        if (hit.marker === THINK_OPEN) {
          this.mode = { kind: "reasoning" };
          return;
        }
        this.openCallBlock(hit.marker, hit.after);
        return;
      }
      case "reasoning": {
        const hit = this.scan([THINK_CLOSE], final, (t) => this.emitReasoning(t));
        if (hit) {
          this.mode = { kind: "text" };
          this.trimNext = true;
        }
        return;
      }
      case "hermes":
      case "llama-json":
        this.readJsonCall(m, final);
        return;
      case "hermes-close": {
        const lead = this.buf.replace(/^\s+/, "");
        if (lead.startsWith(MARKERS.hermes.close)) {
          this.buf = lead.slice(MARKERS.hermes.close.length);
          this.mode = { kind: "text" };
        } else if (lead !== "" && !MARKERS.hermes.close.startsWith(lead)) {
          // No closing tag: carry on as text.
          this.buf = lead;
          this.mode = { kind: "text" };
        } else if (final) this.buf = "";
        return;
      }
      case "llama-probe": {
        // Decide whether a reply that starts with `{` is a call: its first key is "name" (or "type").
        const lead = this.buf.replace(/^\s+/, "");
        if (lead === "" && !final) return;
        const decided = /^\{\s*"([^"\\]*)"/.exec(lead);
        if (decided) {
          if (decided[1] === "name" || decided[1] === "type") {
            this.startJsonCall("llama-json", lead, "");
            return;
          }
        } else if (!final && /^\{\s*("[^"\\]*)?$/.test(lead)) return;
        this.atStart = false;
        this.emitContent(this.buf);
        this.buf = "";
        this.mode = { kind: "text" };
        return;
      }
      case "llama-between": {
        // Llama 3.2+ separate parallel calls with `;` (or newlines).
        const lead = this.buf.replace(/^[\s;]+/, "");
        if (lead.startsWith("{")) this.startJsonCall("llama-json", lead, "");
        else if (lead.startsWith(MARKERS.llama3.pythonTag)) {
          this.buf = lead.slice(MARKERS.llama3.pythonTag.length);
          this.mode = { kind: "llama-probe" };
        } else if (lead !== "") {
          this.buf = lead;
          this.mode = { kind: "text" };
        } else if (final) this.buf = "";
        return;
      }
      case "mistral-start": {
        const lead = this.buf.replace(/^\s+/, "");
        if (lead === "") {
          if (final) this.buf = "";
          return;
        }
        if (lead.startsWith("[")) {
          this.buf = lead.slice(1);
          this.mode = { kind: "mistral-array", reader: undefined };
          this.constrain("call", this.buf);
          return;
        }
        // `name[ARGS]{...}` (or `name[CALL_ID]id[ARGS]{...}`): the name runs to the next `[`.
        const at = lead.indexOf("[");
        if (at === -1) {
          if (final) this.buf = "";
          else this.buf = lead;
          return;
        }
        this.buf = lead.slice(at);
        this.mode = { kind: "mistral-name", name: lead.slice(0, at).trim() };
        return;
      }
      case "mistral-name": {
        const { args, callId } = MARKERS.mistral;
        if (this.buf.startsWith(callId)) {
          const next = this.buf.indexOf("[", callId.length);
          if (next === -1) {
            if (final) this.buf = "";
            return;
          }
          this.buf = this.buf.slice(next);
          return;
        }
        if (this.buf.startsWith(args)) {
          this.buf = this.buf.slice(args.length);
          this.startCall(m.name);
          this.constrain("arguments", this.buf, m.name);
          this.mode = { kind: "raw-json-args", scanner: new JsonValueScanner(), next: { kind: "text" } };
          return;
        }
        if (!final && (args.startsWith(this.buf) || callId.startsWith(this.buf))) return;
        // Not a call after all: never content either (it followed [TOOL_CALLS]).
        this.buf = "";
        this.mode = { kind: "text" };
        return;
      }
      case "raw-json-args": {
        if (this.buf === "") return;
        const used = m.scanner.feed(this.buf);
        this.emitArgs(this.buf.slice(0, used));
        this.buf = this.buf.slice(used);
        if (m.scanner.done) {
          this.closeCall();
          this.release();
          this.mode = m.next;
        }
        return;
      }
      case "mistral-array": {
        if (!m.reader) {
          const lead = this.buf.replace(/^[\s,]+/, "");
          if (lead === "") {
            this.buf = "";
            return;
          }
          if (lead.startsWith("]")) {
            this.buf = lead.slice(1);
            this.release();
            this.mode = { kind: "text" };
            return;
          }
          this.buf = lead;
          m.reader = this.jsonReader();
        }
        this.feedReader(m.reader, () => {
          m.reader = undefined;
        });
        return;
      }
      case "ds-calls": {
        const lead = this.buf.replace(/^\s+/, "");
        const { callBegin, callsEnd } = MARKERS.deepseek;
        if (lead.startsWith(callBegin)) {
          this.buf = lead.slice(callBegin.length);
          this.mode = { kind: "ds-header", text: "" };
        } else if (lead.startsWith(callsEnd)) {
          this.buf = lead.slice(callsEnd.length);
          this.mode = { kind: "text" };
        } else if (lead !== "" && !callBegin.startsWith(lead) && !callsEnd.startsWith(lead)) {
          this.buf = lead;
          this.mode = { kind: "text" };
        } else if (final) this.buf = "";
        return;
      }
      case "ds-header": {
        // R1: `function<｜tool▁sep｜>name\n```json\n{...}\n```<｜tool▁call▁end｜>`;
        // V3.1: `name<｜tool▁sep｜>{...}<｜tool▁call▁end｜>`.
        const at = this.buf.indexOf(DS_SEP);
        if (at === -1) {
          if (final) this.buf = "";
          return;
        }
        const head = this.buf.slice(0, at).trim();
        this.buf = this.buf.slice(at + DS_SEP.length);
        if (head === "function") this.mode = { kind: "ds-fn-name", text: "" };
        else {
          this.startCall(head);
          this.constrain("arguments", this.buf, head);
          this.mode = { kind: "ds-args", fenced: false };
        }
        return;
      }
      case "ds-fn-name": {
        const fence = /^([^\n]*)\n```(?:json)?\n/.exec(this.buf);
        if (!fence) {
          if (final) this.buf = "";
          return;
        }
        const name = (fence[1] as string).trim();
        this.buf = this.buf.slice(fence[0].length);
        this.startCall(name);
        this.constrain("arguments", this.buf, name);
        this.mode = { kind: "ds-args", fenced: true };
        return;
      }
      case "ds-args": {
        const ends = m.fenced ? ["\n```", DS_CALL_END] : [DS_CALL_END];
        const hit = this.scan(ends, final, (t) => this.emitArgs(t));
        if (!hit) return;
        this.closeCall();
        this.release();
        this.mode = hit.marker === DS_CALL_END ? { kind: "ds-calls" } : { kind: "ds-call-end" };
        return;
      }
      case "ds-call-end": {
        // After R1's closing fence, up to `<｜tool▁call▁end｜>`.
        const hit = this.scan([DS_CALL_END], final, () => {});
        if (hit) this.mode = { kind: "ds-calls" };
        return;
      }
      case "harmony-header":
        this.harmonyHeader(m, final);
        return;
      case "harmony-body":
        this.harmonyBody(m, final);
        return;
    }
  }

  private openCallBlock(marker: string, after: string): void {
    switch (marker) {
      case MARKERS.hermes.open:
        this.startJsonCall("hermes", this.buf, after);
        return;
      case MARKERS.llama3.pythonTag:
        this.mode = { kind: "llama-probe" };
        return;
      case MARKERS.mistral.calls:
        this.mode = { kind: "mistral-start" };
        return;
      case DS_CALLS_BEGIN:
        this.mode = { kind: "ds-calls" };
        return;
      case DS_CALL_BEGIN:
        this.mode = { kind: "ds-header", text: "" };
        return;
    }
  }

  private jsonReader(): JsonCallReader {
    return new JsonCallReader((e) => {
      if (e.kind === "name") this.startCall(e.name);
      else this.emitArgs(e.text);
    });
  }

  private startJsonCall(kind: "hermes" | "llama-json", text: string, after: string): void {
    this.buf = text;
    this.mode = { kind, reader: this.jsonReader() };
    this.constrain("call", after);
  }

  /** Feeds the buffer to a call object; `done` runs when the object closed. */
  private feedReader(reader: JsonCallReader, done: () => void): boolean {
    let used: number;
    try {
      used = reader.feed(this.buf);
    } catch (err) {
      if (!(err instanceof NotACall)) throw err;
      // Not a call after all: whatever is left is dropped (it sat inside a call marker).
      this.buf = "";
      if (this.openCall !== undefined) this.closeCall();
      this.release();
      this.mode = { kind: "text" };
      return false;
    }
    this.buf = this.buf.slice(used);
    if (reader.done) {
      if (reader.name === undefined) {
        // An object with no name is no call.
        this.release();
      } else {
        this.closeCall();
        this.release();
      }
      done();
      return true;
    }
    return false;
  }

  private readJsonCall(m: Extract<Mode, { kind: "hermes" | "llama-json" }>, _final: boolean): void {
    if (this.buf === "") return;
    this.feedReader(m.reader, () => {
      this.mode = m.kind === "hermes" ? { kind: "hermes-close" } : { kind: "llama-between" };
    });
  }

  private harmonyHeader(m: Extract<Mode, { kind: "harmony-header" }>, final: boolean): void {
    const { message, channel, start } = MARKERS.harmony;
    if (m.text === "" && !this.buf.startsWith(channel) && !this.buf.startsWith(start)) {
      // Plain text where a header should be: content up to the next header.
      if (!final && (channel.startsWith(this.buf) || start.startsWith(this.buf))) return;
      const hit = this.scan([channel, start], final, (t) => this.emitContent(t));
      if (hit) m.text = hit.marker;
      return;
    }
    const all = m.text + this.buf;
    const at = all.indexOf(message);
    if (at === -1) {
      m.text = all;
      this.buf = "";
      return;
    }
    const header = all.slice(0, at);
    this.buf = all.slice(at + message.length);
    m.text = "";
    const recipient = /to=functions\.([^\s<]+)/.exec(header);
    const ch = /<\|channel\|>\s*(\w+)/.exec(header)?.[1] ?? "final";
    if (recipient && this.options.tools) {
      const name = recipient[1] as string;
      this.startCall(name);
      this.constrain("arguments", this.buf, name);
      this.mode = { kind: "harmony-body", channel: "call" };
    } else if (ch === "analysis") this.mode = { kind: "harmony-body", channel: "analysis" };
    else {
      this.mode = { kind: "harmony-body", channel: ch === "commentary" ? "commentary" : "final" };
      this.trimNext = true;
    }
  }

  private harmonyBody(m: Extract<Mode, { kind: "harmony-body" }>, final: boolean): void {
    const { end, call, return: ret, start, channel } = MARKERS.harmony;
    const emit =
      m.channel === "analysis"
        ? (t: string) => this.emitReasoning(t)
        : m.channel === "call"
          ? (t: string) => this.emitArgs(t)
          : (t: string) => this.emitContent(t);
    const hit = this.scan([end, call, ret, start, channel], final, emit);
    if (!hit) return;
    if (m.channel === "call") {
      this.closeCall();
      this.release();
    }
    this.mode = { kind: "harmony-header", text: hit.marker === start || hit.marker === channel ? hit.marker : "" };
  }
}

/** Families whose models write `<think>…</think>` before they answer. */
export function thinks(family: ToolFamily): boolean {
  return family === "qwen3" || family === "deepseek-r1";
}
