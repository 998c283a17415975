// /v1/files: upload (multipart), list, retrieve, download and delete, in OpenAI's shapes.
import { rm, stat } from "node:fs/promises";
import { create as contentDisposition } from "content-disposition";
import { Hono } from "hono";
import { type FilePurpose, InvalidFileError, UPLOAD_PURPOSES } from "../src/finetune/files.ts";
import { fromZodError, invalidRequest, notFound, rateLimited } from "../src/openai/errors.ts";
import { ListFilesQuery } from "../src/openai/fine-tuning.ts";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";
import { type ReceivedUpload, receiveUpload } from "./multipart.ts";

/** The text parts an upload may have beside `file`. */
const FORM_FIELDS: ReadonlySet<string> = new Set(["purpose"]);

export function fileRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const files = services.fineTuning.files;
  const missing = (id: string) => notFound(`No such File object: ${id}`, "file_id");

  app.post("/", async (c) => {
    if (!(c.req.header("content-type") ?? "").startsWith("multipart/form-data")) {
      throw invalidRequest("Upload the file as multipart/form-data with fields `file` and `purpose`.");
    }
    const caller = c.get("caller");
    const release = services.uploads.acquire(caller.limitKey);
    if (!release) {
      throw rateLimited(
        1,
        `Too many uploads at once: at most ${services.uploads.perCaller} per key may be in flight. Retry when one has finished.`,
      );
    }
    let upload: ReceivedUpload | undefined;
    try {
      upload = await receiveUpload(c, {
        fileField: "file",
        fields: FORM_FIELDS,
        maxBytes: services.uploadLimitBytes,
        tempPath: () => files.incomingPath(),
      });
      const { file } = upload;
      const purpose = upload.fields.get("purpose");
      if (!file) throw invalidRequest("Missing the `file` field (a file part).", "file", "missing_required_parameter");
      if (purpose === undefined)
        throw invalidRequest("Missing the `purpose` field.", "purpose", "missing_required_parameter");
      if (!(UPLOAD_PURPOSES as readonly string[]).includes(purpose)) {
        throw invalidRequest(
          `Invalid purpose "${purpose}": expected one of ${UPLOAD_PURPOSES.join(", ")}.`,
          "purpose",
          "invalid_value",
        );
      }
      await services.fineTuning.checkStorage(caller.tenant, (await stat(file.path)).size);
      try {
        return c.json(
          await files.createFromFile({
            filename: file.name,
            purpose: purpose as FilePurpose,
            path: file.path,
            owner: caller.tenant,
          }),
        );
      } catch (err) {
        if (err instanceof InvalidFileError) throw invalidRequest(err.message, "file", "invalid_file_format");
        throw err;
      }
    } catch (err) {
      // A refused upload may not have been read to its end: the connection goes rather than reading on.
      c.header("connection", "close");
      throw err;
    } finally {
      release();
      // Renamed into place when stored; otherwise it goes.
      if (upload?.file) await rm(upload.file.path, { force: true });
    }
  });

  app.get("/", async (c) => {
    const parsed = ListFilesQuery.safeParse(c.req.query(), { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    const { purpose, after, limit, order } = parsed.data;
    const all = await files.list(purpose, c.get("caller").viewer);
    if (order === "desc") all.reverse();
    let start = 0;
    if (after !== undefined) {
      const i = all.findIndex((f) => f.id === after);
      start = i < 0 ? all.length : i + 1;
    }
    const data = all.slice(start, start + limit);
    return c.json({
      object: "list",
      data,
      first_id: data[0]?.id ?? null,
      last_id: data.at(-1)?.id ?? null,
      has_more: start + limit < all.length,
    });
  });

  app.get("/:id", async (c) => {
    const id = c.req.param("id");
    const file = await files.get(id, c.get("caller").viewer);
    if (!file) throw missing(id);
    return c.json(file);
  });

  app.get("/:id/content", async (c) => {
    const id = c.req.param("id");
    const viewer = c.get("caller").viewer;
    const [file, bytes] = [await files.get(id, viewer), await files.content(id, viewer)];
    if (!file || !bytes) throw missing(id);
    return c.body(new Uint8Array(bytes), 200, {
      "content-type": "application/octet-stream",
      // RFC 6266: an ASCII fallback in filename, the name itself in filename* (RFC 5987,
      // UTF-8 percent-encoded), so header values stay ASCII whatever the name is.
      "content-disposition": contentDisposition(file.filename),
    });
  });

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    if (!(await services.fineTuning.deleteFile(id, c.get("caller").viewer))) throw missing(id);
    return c.json({ id, object: "file", deleted: true });
  });

  return app;
}
