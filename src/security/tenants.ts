// Who owns what a key makes, and the limits of that owner. A key is its own tenant unless
// models.yaml's tenants.projects puts it in a project, which its keys then share. Pure: the
// counts a limit is checked against come from the stores that hold the objects.
import type { TenantLimitsConfig, TenantsConfig } from "../config/load.ts";
import { ApiError } from "../openai/errors.ts";

/** The tenant of a project's keys: a prefix no key id (key_…) or the open tenant can have. */
export function projectTenant(project: string): string {
  return `project_${project}`;
}

/** The tenant of whatever the admin key makes through /v1 (it sees every tenant's objects). */
export const ADMIN_TENANT = "admin";

export class Tenants {
  private readonly projectOfKey: ReadonlyMap<string, string>;
  private readonly projectLimits: ReadonlyMap<string, TenantLimitsConfig>;

  constructor(private readonly config: TenantsConfig = { projects: new Map(), limits: {} }) {
    this.projectOfKey = new Map(
      [...config.projects].flatMap(([name, project]) => project.keys.map((key): [string, string] => [key, name])),
    );
    this.projectLimits = new Map(
      [...config.projects].flatMap(([name, project]): [string, TenantLimitsConfig][] =>
        project.limits ? [[projectTenant(name), project.limits]] : [],
      ),
    );
  }

  /** The tenant of an API key: its project's, or its own id. */
  ofKey(keyId: string): string {
    const project = this.projectOfKey.get(keyId);
    return project === undefined ? keyId : projectTenant(project);
  }

  limits(tenant: string): TenantLimitsConfig {
    return this.projectLimits.get(tenant) ?? this.config.limits;
  }
}

/** 400 when a tenant's files would pass tenants.limits.stored_bytes; undefined when they fit. */
export function storageRefusal(limits: TenantLimitsConfig, storedBytes: number): ApiError | undefined {
  if (limits.storedBytes === undefined || storedBytes <= limits.storedBytes) return undefined;
  return new ApiError(
    400,
    `This upload would bring your stored files to ${storedBytes} bytes, past your limit of ${limits.storedBytes} bytes (tenants.limits.stored_bytes). Delete files you no longer need (DELETE /v1/files/{file_id}) and upload again.`,
    { param: "file", code: "storage_limit_exceeded" },
  );
}

/** 429 when a new job would pass tenants.limits.queued_jobs; undefined when it may wait. */
export function queuedJobsRefusal(limits: TenantLimitsConfig, waiting: number): ApiError | undefined {
  if (limits.queuedJobs === undefined || waiting < limits.queuedJobs) return undefined;
  return new ApiError(
    429,
    `You have ${waiting} fine-tuning jobs waiting to train, the most allowed (tenants.limits.queued_jobs is ${limits.queuedJobs}). Create this job once one of them starts, or cancel one.`,
    { type: "rate_limit_exceeded", code: "too_many_queued_jobs" },
  );
}

/** Whether one more of a tenant's jobs may start training while `running` of its jobs train. */
export function mayStartTraining(limits: TenantLimitsConfig, running: number): boolean {
  return limits.runningJobs === undefined || running < limits.runningJobs;
}
