// npm run tools: build llama-finetune, llama-quantize and llama-server once, cached.
import { buildTools, toolsBuilt, toolsDir } from "../src/engine/llama-tools.ts";

try {
  const cached = await toolsBuilt();
  const bin = await buildTools({ log: (l) => console.error(l) });
  console.log(cached ? `llama.cpp tools cached in ${bin}` : `llama.cpp tools built in ${bin}`);
} catch (err) {
  console.error(`npm run tools: ${(err as Error).message}`);
  console.error(`(cache folder: ${await toolsDir().catch(() => "?")})`);
  process.exit(1);
}
