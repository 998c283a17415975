// A multipart/form-data upload read as it arrives (busboy): the file part streams into a temp
// file, the other parts are small text fields. Memory stays at busboy's and the write stream's
// buffers whatever the upload's size. Every refusal is an ApiError; the temp file is removed
// on any failure.
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import busboy from "busboy";
import type { Context } from "hono";
import { fileNameProblem } from "../src/finetune/files.ts";
import { type ApiError, invalidRequest, payloadTooLarge, unsupportedParameter } from "../src/openai/errors.ts";
import type { AppEnv } from "./env.ts";
import { requestHeader } from "./node-http.ts";

export interface ReceivedUpload {
  /** The text parts, by name. */
  fields: Map<string, string>;
  /** The file part, written to `path`; undefined when the form had none. */
  file: { name: string; path: string } | undefined;
}

export interface UploadOptions {
  /** The one part that may be a file. */
  fileField: string;
  /** The text parts allowed beside it. */
  fields: ReadonlySet<string>;
  /** Bytes of body, all parts together. */
  maxBytes: number;
  /** Where the file part goes (a fresh temp path). */
  tempPath(): Promise<string>;
}

/** Longest text part: fields here are words like a purpose, not data. */
const MAX_FIELD_BYTES = 4096;
/** Parts in one form; more is not an upload of one file. */
const MAX_PARTS = 16;

/** The request body as a node stream: node's own request under the node server, the web body otherwise (app.request()). */
function bodyStream(c: Context<AppEnv>): Readable {
  const incoming = c.env?.incoming;
  if (incoming) return incoming;
  const body = c.req.raw.body;
  return body ? Readable.fromWeb(body as import("node:stream/web").ReadableStream) : Readable.from([]);
}

export function receiveUpload(c: Context<AppEnv>, opts: UploadOptions): Promise<ReceivedUpload> {
  const source = bodyStream(c);
  const fields = new Map<string, string>();
  let file: { name: string; path: string } | undefined;
  let writing: Promise<void> | undefined;
  let failure: ApiError | undefined;

  return new Promise<ReceivedUpload>((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: { "content-type": requestHeader(c, "content-type") ?? "" },
        // Browsers and SDKs send UTF-8 file names; busboy's default would read them as Latin-1.
        defParamCharset: "utf8",
        limits: { fieldSize: MAX_FIELD_BYTES, parts: MAX_PARTS, fileSize: opts.maxBytes },
      });
    } catch (err) {
      reject(unreadable(err));
      return;
    }

    const fail = (err: ApiError) => {
      if (failure) return;
      failure = err;
      // Stop reading: the route answers at once (connection: close), without taking in the rest.
      source.unpipe(parser);
      source.pause();
      const written = file?.path;
      void (writing ?? Promise.resolve())
        .catch(() => {})
        .then(() => (written ? rm(written, { force: true }) : undefined))
        .finally(() => reject(err));
    };

    let received = 0;
    source.on("data", (chunk: Buffer) => {
      received += chunk.length;
      // A declared length was checked before the route (routes/auth.ts limitBody); a chunked body is counted here.
      if (received > opts.maxBytes) fail(payloadTooLarge(opts.maxBytes));
    });
    source.on("error", () => fail(invalidRequest("The upload was cut short.", null, "invalid_multipart")));

    parser.on("file", (name, stream, info) => {
      // busboy destroys a file stream with the form's error (a body cut short): a stream that is
      // discarded, or not yet piped, must not turn that into an uncaught exception.
      stream.on("error", () => {});
      if (failure) {
        stream.resume();
        return;
      }
      if (name !== opts.fileField) {
        stream.resume();
        fail(opts.fields.has(name) ? notAFile(name) : unsupportedParameter(name));
        return;
      }
      if (file) {
        stream.resume();
        fail(duplicate(name));
        return;
      }
      const filename = formName(info.filename);
      const problem = fileNameProblem(filename);
      if (problem) {
        stream.resume();
        fail(invalidRequest(problem, name, "invalid_file_name"));
        return;
      }
      stream.on("limit", () => fail(payloadTooLarge(opts.maxBytes)));
      const part = { name: filename, path: "" };
      file = part;
      writing = opts.tempPath().then((path) => {
        part.path = path;
        return pipeline(stream, createWriteStream(path));
      });
      writing.catch(() => fail(invalidRequest("The upload could not be received.", name, "invalid_multipart")));
    });

    parser.on("field", (name, value, info) => {
      if (name === opts.fileField) fail(invalidRequest(`The \`${name}\` part must be a file.`, name));
      else if (!opts.fields.has(name)) fail(unsupportedParameter(name));
      else if (fields.has(name)) fail(duplicate(name));
      else if (info.valueTruncated) fail(invalidRequest(`The \`${name}\` part is too long.`, name));
      else fields.set(name, value);
    });
    parser.on("partsLimit", () =>
      fail(invalidRequest(`Too many parts: send \`${opts.fileField}\` and ${[...opts.fields].join(", ")} only.`)),
    );
    parser.on("error", (err) => fail(unreadable(err)));
    parser.on("close", () => {
      if (failure) return;
      void (writing ?? Promise.resolve()).then(
        () => {
          if (!failure) resolve({ fields, file });
        },
        () => {},
      );
    });
    source.pipe(parser);
  });
}

function duplicate(name: string): ApiError {
  return invalidRequest(`The \`${name}\` part was sent more than once; send exactly one.`, name, "duplicate_parameter");
}

function notAFile(name: string): ApiError {
  return invalidRequest(`The \`${name}\` part must be a text field, not a file.`, name);
}

/** A body that is not the multipart it says it is (no boundary, cut short, garbled). */
function unreadable(err: unknown): ApiError {
  let reason = (err instanceof Error ? err.message : String(err)).split("\n")[0] ?? "unreadable";
  if (reason === "Malformed part header") {
    // Most often a file name with a control character, which header syntax does not allow.
    reason = "a part's headers are malformed: a control character in a file name, or a header cut short";
  }
  return invalidRequest(
    `Could not read the multipart/form-data body (${reason}). Send fields \`file\` and \`purpose\` as multipart/form-data.`,
    null,
    "invalid_multipart",
  );
}

/**
 * A file part's name as the client meant it. Browsers and undici escape `"`, CR and LF in a
 * quoted filename as %22, %0D and %0A (the HTML multipart rules); those three are undone, as
 * web FormData parsing does, so a quote survives and a line break meets the name check.
 */
function formName(filename: string | undefined): string {
  if (!filename) return "upload";
  return filename.replace(/%22/g, '"').replace(/%0D/gi, "\r").replace(/%0A/gi, "\n");
}
