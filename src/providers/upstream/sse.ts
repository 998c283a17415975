// An incremental server-sent events parser for upstream responses: bytes in, one entry per
// event out, as the HTML spec frames them (LF, CRLF or CR line ends; `data:` lines joined by
// LF; comments and unknown fields skipped). Bytes may split anywhere, even inside a UTF-8
// character, so it keeps what it cannot finish yet and nothing more. Each character is scanned
// for line ends once, however the bytes are split, so the cost stays linear.
import { StringDecoder } from "node:string_decoder";

export interface SseMessage {
  /** The `event:` field; undefined for plain `data:` events, which is all OpenAI sends. */
  event: string | undefined;
  data: string;
}

export class SseParser {
  private readonly decoder = new StringDecoder("utf8");
  /** The start of a line whose end has not arrived yet. */
  private buffer = "";
  private data: string[] = [];
  private event: string | undefined;
  /** A CR ended the last chunk: an LF opening the next one belongs to it. */
  private pendingCr = false;

  /** The events that `chunk` completes, in order. */
  push(chunk: Buffer): SseMessage[] {
    let text = this.decoder.write(chunk);
    if (this.pendingCr && text.charCodeAt(0) === 10) text = text.slice(1);
    this.pendingCr = false;
    const out: SseMessage[] = [];
    // The buffer holds no line end (it would have been consumed), so scanning starts at the new text.
    const buf = this.buffer === "" ? text : this.buffer + text;
    let start = 0;
    let scan = this.buffer.length;
    let lf = buf.indexOf("\n", scan);
    // OpenAI-compatible servers end lines with LF; a CR is looked for once per chunk and then
    // only again once passed, rather than once per line.
    let cr = buf.indexOf("\r", scan);
    for (;;) {
      if (lf >= 0 && lf < scan) lf = buf.indexOf("\n", scan);
      if (cr >= 0 && cr < scan) cr = buf.indexOf("\r", scan);
      let end: number;
      if (cr >= 0 && (lf < 0 || cr < lf)) {
        end = cr;
        if (cr + 1 === buf.length) {
          this.pendingCr = true;
          scan = cr + 1;
        } else scan = buf.charCodeAt(cr + 1) === 10 ? cr + 2 : cr + 1;
      } else if (lf >= 0) {
        end = lf;
        scan = lf + 1;
      } else break;
      this.line(buf.slice(start, end), out);
      start = scan;
    }
    this.buffer = start === 0 ? buf : buf.slice(start);
    return out;
  }

  private line(line: string, out: SseMessage[]): void {
    if (line === "") {
      if (this.data.length > 0) {
        out.push({ event: this.event, data: this.data.length === 1 ? (this.data[0] as string) : this.data.join("\n") });
      }
      this.data = [];
      this.event = undefined;
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' comment */) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
  }
}
