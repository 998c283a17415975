// multipart/form-data bodies built by hand, for uploads that fetch's FormData would tidy up or
// refuse: control characters in a file name, duplicated parts, raw bytes.

export interface Part {
  name: string;
  /** Present for a file part. */
  filename?: string;
  /** A file part's name sent as RFC 5987 `filename*=UTF-8''…` instead. */
  filenameStar?: string;
  body: string | Buffer;
}

export interface MultipartBody {
  contentType: string;
  body: Buffer;
}

export function multipart(parts: readonly Part[], boundary = "----roundhouse-test-boundary"): MultipartBody {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const file =
      p.filenameStar !== undefined
        ? `; filename*=UTF-8''${encodeURIComponent(p.filenameStar)}`
        : p.filename !== undefined
          ? `; filename="${p.filename}"`
          : undefined;
    const disposition =
      file === undefined
        ? `form-data; name="${p.name}"`
        : `form-data; name="${p.name}"${file}\r\ncontent-type: application/octet-stream`;
    chunks.push(Buffer.from(`--${boundary}\r\ncontent-disposition: ${disposition}\r\n\r\n`, "utf8"));
    chunks.push(typeof p.body === "string" ? Buffer.from(p.body, "utf8") : p.body);
    chunks.push(Buffer.from("\r\n"));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { contentType: `multipart/form-data; boundary=${boundary}`, body: Buffer.concat(chunks) };
}
