// Key ids (record.ts keyId) remembered per bearer header: a server sees few distinct keys,
// and a sha256 per request is a tenth of the recording budget. Bounded, because the header
// is client input: past the bound the memory starts over rather than grows.
import { keyId } from "./record.ts";

const MAX_KEYS = 1024;

export class KeyIds {
  private readonly ids = new Map<string, string>();

  of(authorization: string | undefined): string {
    if (authorization === undefined) return "anonymous";
    let id = this.ids.get(authorization);
    if (id === undefined) {
      id = keyId(authorization);
      if (this.ids.size >= MAX_KEYS) this.ids.clear();
      this.ids.set(authorization, id);
    }
    return id;
  }
}
