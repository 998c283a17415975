// Memory the server spends on concurrent uploads (issue #21 item 2): N concurrent uploads of
// M MB fine-tune JSONL to a server in its own process; prints baseline, peak growth and the
// growth left once they are over. `npx tsx bench/uploads.ts [uploads=6] [megabytes=40]`.
import { measureUploads } from "../test/helpers/upload-memory.ts";

const uploads = Number(process.argv[2] ?? 6);
const megabytes = Number(process.argv[3] ?? 40);
const result = await measureUploads({ uploads, megabytes, settleMs: 10_000, settleFully: true });
console.log(JSON.stringify(result));
