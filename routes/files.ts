// /v1/files: upload (multipart), list, retrieve, download and delete, in OpenAI's shapes.
import { create as contentDisposition } from "content-disposition";
import { Hono } from "hono";
import { type FilePurpose, fileNameProblem, InvalidFileError, UPLOAD_PURPOSES } from "../src/finetune/files.ts";
import { fromZodError, invalidRequest, notFound, unsupportedParameter } from "../src/openai/errors.ts";
import { ListFilesQuery } from "../src/openai/fine-tuning.ts";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";

const FORM_FIELDS = new Set(["file", "purpose"]);

export function fileRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const files = services.fineTuning.files;
  const missing = (id: string) => notFound(`No such File object: ${id}`, "file_id");

  app.post("/", async (c) => {
    if (!(c.req.header("content-type") ?? "").startsWith("multipart/form-data")) {
      throw invalidRequest("Upload the file as multipart/form-data with fields `file` and `purpose`.");
    }
    let form: Awaited<ReturnType<typeof c.req.parseBody>>;
    try {
      // `all`: a part sent twice comes back as an array rather than the last one silently winning.
      form = await c.req.parseBody({ all: true });
    } catch (err) {
      // A body that is not the multipart it says it is (no boundary, cut short, garbled).
      throw invalidRequest(
        `Could not read the multipart/form-data body (${firstLine(err)}). Send fields \`file\` and \`purpose\` as multipart/form-data.`,
        null,
        "invalid_multipart",
      );
    }
    for (const [key, value] of Object.entries(form)) {
      if (!FORM_FIELDS.has(key)) throw unsupportedParameter(key);
      if (Array.isArray(value)) {
        throw invalidRequest(
          `The \`${key}\` part was sent more than once; send exactly one.`,
          key,
          "duplicate_parameter",
        );
      }
    }
    const { file, purpose } = form;
    if (!(file instanceof File))
      throw invalidRequest("Missing the `file` field (a file part).", "file", "missing_required_parameter");
    if (typeof purpose !== "string")
      throw invalidRequest("Missing the `purpose` field.", "purpose", "missing_required_parameter");
    if (!(UPLOAD_PURPOSES as readonly string[]).includes(purpose)) {
      throw invalidRequest(
        `Invalid purpose "${purpose}": expected one of ${UPLOAD_PURPOSES.join(", ")}.`,
        "purpose",
        "invalid_value",
      );
    }
    const nameProblem = fileNameProblem(file.name);
    if (nameProblem) throw invalidRequest(nameProblem, "file", "invalid_file_name");
    try {
      const created = await files.create({
        filename: file.name || "upload",
        purpose: purpose as FilePurpose,
        bytes: new Uint8Array(await file.arrayBuffer()),
      });
      return c.json(created);
    } catch (err) {
      if (err instanceof InvalidFileError) throw invalidRequest(err.message, "file", "invalid_file_format");
      throw err;
    }
  });

  app.get("/", async (c) => {
    const parsed = ListFilesQuery.safeParse(c.req.query(), { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    const { purpose, after, limit, order } = parsed.data;
    const all = await files.list(purpose);
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
    const file = await files.get(id);
    if (!file) throw missing(id);
    return c.json(file);
  });

  app.get("/:id/content", async (c) => {
    const id = c.req.param("id");
    const [file, bytes] = [await files.get(id), await files.content(id)];
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
    if (!(await services.fineTuning.deleteFile(id))) throw missing(id);
    return c.json({ id, object: "file", deleted: true });
  });

  return app;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0] ?? "unreadable";
}
