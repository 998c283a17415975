// Who a request's bearer token belongs to (an API key, the admin key, or nobody) and whether
// that opens the area it asks for. Keys are kept only as sha256 digests and compared digest
// to digest with timingSafeEqual: both sides always have 32 bytes, so the time a check takes
// reveals neither a key's length nor how much of it a guess got right.
import { createHash, timingSafeEqual } from "node:crypto";
import { type ApiError, invalidApiKey, missingApiKey, permissionDenied } from "../openai/errors.ts";
import { ADMIN_TENANT, Tenants } from "./tenants.ts";

/** What a bearer token turned out to be. `none`: no bearer token at all. */
export type Credential = "none" | "api" | "admin" | "unknown";

/** `api`: the OpenAI routes under /v1; `admin`: /admin. */
export type Area = "api" | "admin";

export interface KeysConfigured {
  /** API_KEYS is set: /v1 is closed to requests without one of them. */
  api: boolean;
  /** ADMIN_API_KEY is set: /admin is closed to requests without it. */
  admin: boolean;
}

/** The one tenant of a server without API_KEYS: everything belongs to everyone, as before keys. */
export const OPEN_TENANT = "open";

/** Who sent a request, as the routes need it. */
export interface Caller {
  credential: Credential;
  /** `key_` + 12 hex digits of the token's sha256 (as in logs and the usage log); `anonymous` without a token. */
  keyId: string;
  /**
   * Who owns what this request creates: the key's id, or its project's tenant (tenants.projects),
   * with API_KEYS set; ADMIN_TENANT for the admin key; OPEN_TENANT without API_KEYS (any bearer
   * string is then the same caller).
   */
  tenant: string;
  /** Whose objects it sees: its tenant's; undefined (everyone's) for the admin key. */
  viewer: string | undefined;
  /**
   * What per-caller limits (rate limits, concurrent uploads) count against: the key's id with
   * API_KEYS set; without, the client's address, since any bearer string is then let in and a
   * new one per request would otherwise be a new caller.
   */
  limitKey: string;
  /** API_KEYS is unset: /v1 is open to anyone. */
  open: boolean;
}

export class ApiKeys {
  private readonly api: readonly Buffer[];
  private readonly admin: Buffer | undefined;
  readonly configured: KeysConfigured;

  constructor(
    apiKeys: readonly string[],
    adminKey: string | undefined,
    private readonly tenants: Tenants = new Tenants(),
  ) {
    this.api = apiKeys.filter((k) => k !== "").map(digest);
    this.admin = adminKey === undefined || adminKey === "" ? undefined : digest(adminKey);
    this.configured = { api: this.api.length > 0, admin: this.admin !== undefined };
  }

  identify(authorization: string | undefined): Credential {
    return this.caller(authorization, "").credential;
  }

  /** The caller of a request, from one digest of its token; `address` is the client's (IP). */
  caller(authorization: string | undefined, address: string): Caller {
    const token = bearerToken(authorization);
    const given = token === undefined ? undefined : digest(token);
    const keyId = given === undefined ? "anonymous" : `key_${given.toString("hex").slice(0, 12)}`;
    const open = !this.configured.api;
    const credential = given === undefined ? "none" : this.credentialOf(given);
    const tenant = open ? OPEN_TENANT : credential === "admin" ? ADMIN_TENANT : this.tenants.ofKey(keyId);
    return {
      credential,
      keyId,
      tenant,
      viewer: credential === "admin" ? undefined : tenant,
      limitKey: open ? addressId(address) : keyId,
      open,
    };
  }

  private credentialOf(given: Buffer): Credential {
    // Every key is compared, matched or not, so timing does not tell which one matched.
    let api = false;
    for (const key of this.api) api = timingSafeEqual(given, key) || api;
    const admin = this.admin !== undefined && timingSafeEqual(given, this.admin);
    return admin ? "admin" : api ? "api" : "unknown";
  }
}

/**
 * Whether `credential` may use `area`: undefined when it may, else the error to answer.
 * An area whose key is not configured is open, as without keys at all. API keys open /v1 only:
 * a client's key that reaches /admin gets 403 (it is a real key, just not for this). The admin
 * key opens both: on /v1 it sees every tenant's objects and may force any variant.
 */
export function authorize(area: Area, credential: Credential, configured: KeysConfigured): ApiError | undefined {
  if (!configured[area]) return undefined;
  if (credential === area || credential === "admin") return undefined;
  if (credential === "none") return missingApiKey();
  if (area === "admin" && credential === "api") {
    return permissionDenied("This endpoint needs the admin API key (ADMIN_API_KEY); API keys cannot use it.");
  }
  return invalidApiKey();
}

/** The token of an `Authorization: Bearer …` header (the scheme is case-insensitive, RFC 9110). */
export function bearerToken(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^bearer[ \t]+(.*)$/is.exec(header);
  const token = match?.[1]?.trim();
  return token === undefined || token === "" ? undefined : token;
}

/**
 * Who a request came from on a server without API_KEYS, where any bearer string is let in: its
 * client address, as a non-reversible id like a key's (`addr_` + 12 hex digits of its sha256).
 */
export function addressId(address: string): string {
  return `addr_${createHash("sha256").update(address).digest("hex").slice(0, 12)}`;
}

function digest(secret: string): Buffer {
  return createHash("sha256").update(secret).digest();
}
