// Stack configuration: read from Pulumi config (`quire:*` keys, `aws:region`), checked, with the
// defaults in one place. `loadConfig` takes a plain lookup function so tests can feed it the
// Pulumi.<stack>.yaml files directly.

export interface ServiceSizing {
  /** Fargate CPU units (256 = 0.25 vCPU). */
  cpu: number;
  /** Fargate memory, MiB. */
  memory: number;
  desiredCount: number;
  minCapacity: number;
  maxCapacity: number;
}

export interface StackConfig {
  stack: string;
  region: string;
  availabilityZones: string[];
  vpcCidr: string;
  /** 1: one NAT gateway for the VPC; the number of AZs: one per AZ (no cross-AZ egress dependency). */
  natGateways: number;
  /** The public host name of the API (the ALB's certificate is for it). */
  domain: string;
  /** A Route 53 public zone holding `domain`: DNS validation records and an alias to the ALB. */
  hostedZoneId?: string;
  /** The tag of the Quire image in the stack's ECR repository. */
  imageTag: string;
  cpuArchitecture: "X86_64" | "ARM64";
  api: ServiceSizing;
  worker: ServiceSizing;
  /** Average CPU (percent) the autoscaling of both services steers to. */
  cpuTargetPercent: number;
  db: {
    instanceClass: string;
    engineVersion: string;
    allocatedStorageGb: number;
    maxAllocatedStorageGb: number;
    backupRetentionDays: number;
  };
  /** Deletion protection of the database and the load balancer. */
  deletionProtection: boolean;
  nats: { image: string; cpu: number; memory: number };
  logRetentionDays: number;
  /** The first admin (`QUIRE_ADMIN_USER`); the password is generated and kept in Secrets Manager. */
  adminUser: string;
  /** Key under `models/` in the bucket of a GGUF file to summarise with (unset: extractive summaries). */
  summaryModelKey?: string;
  /** The image that copies the model from S3 before Quire starts. */
  modelFetchImage: string;
  /** How long a deleted secret can be restored (0: deleted at once; else 7–30 days). */
  secretRecoveryWindowDays: number;
  /** Where Quire sends its traces and metrics (`[telemetry]`); unset: nothing is exported. */
  telemetry?: TelemetryConfig;
}

export interface TelemetryConfig {
  /** An OpenTelemetry collector's OTLP/HTTP base URL, e.g. `http://otel-collector:4318`. */
  otlpEndpoint: string;
  /** The endpoint's TCP port (explicit, or 80/443 by scheme): Quire's tasks may send to it. */
  otlpPort: number;
  /** The share of new traces recorded, 0 to 1. */
  traceSampling: number;
}

/** Looks up a config key by its full name (`quire:domain`, `aws:region`); undefined when unset. */
export type ConfigLookup = (key: string) => string | undefined;

// CloudWatch Logs accepts only these retention periods.
const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

// Fargate CPU units and the memory (MiB) each allows: [min, max, step].
const FARGATE_MEMORY: Record<number, [number, number, number]> = {
  256: [512, 2048, 512], // 512, 1024 or 2048 (1536 is refused below)
  512: [1024, 4096, 1024],
  1024: [2048, 8192, 1024],
  2048: [4096, 16384, 1024],
  4096: [8192, 30720, 1024],
};

export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(`invalid stack configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

export function loadConfig(stack: string, lookup: ConfigLookup): StackConfig {
  const problems: string[] = [];
  const raw = (key: string) => {
    const v = lookup(`quire:${key}`);
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  const str = (key: string, def?: string): string => {
    const v = raw(key) ?? def;
    if (v === undefined) {
      problems.push(`quire:${key} is required`);
      return "";
    }
    return v;
  };
  const int = (key: string, def: number): number => {
    const v = raw(key);
    if (v === undefined) return def;
    if (!/^-?\d+$/.test(v)) {
      problems.push(`quire:${key} must be a whole number (it is ${JSON.stringify(v)})`);
      return def;
    }
    return Number(v);
  };
  const bool = (key: string, def: boolean): boolean => {
    const v = raw(key);
    if (v === undefined) return def;
    if (v !== "true" && v !== "false") {
      problems.push(`quire:${key} must be true or false (it is ${JSON.stringify(v)})`);
      return def;
    }
    return v === "true";
  };
  const need = (ok: boolean, message: string) => {
    if (!ok) problems.push(message);
  };

  const region = lookup("aws:region")?.trim() ?? "";
  need(/^[a-z]{2}(-[a-z]+)+-\d$/.test(region), `aws:region is required (e.g. eu-west-1; it is ${JSON.stringify(region)})`);

  let availabilityZones = [`${region}a`, `${region}b`];
  const azRaw = raw("availabilityZones");
  if (azRaw !== undefined) {
    try {
      const parsed: unknown = JSON.parse(azRaw);
      if (!Array.isArray(parsed) || !parsed.every((z) => typeof z === "string")) throw new Error();
      availabilityZones = parsed as string[];
    } catch {
      problems.push("quire:availabilityZones must be a list of zone names");
    }
  }
  need(
    availabilityZones.length >= 2 && availabilityZones.length <= 3,
    `quire:availabilityZones: 2 or 3 zones (it has ${availabilityZones.length})`,
  );
  need(
    new Set(availabilityZones).size === availabilityZones.length,
    "quire:availabilityZones: each zone once",
  );
  need(
    availabilityZones.every((z) => z.startsWith(region)),
    `quire:availabilityZones must be zones of ${region}`,
  );

  const sizing = (prefix: string, defaults: ServiceSizing): ServiceSizing => {
    const s: ServiceSizing = {
      cpu: int(`${prefix}Cpu`, defaults.cpu),
      memory: int(`${prefix}Memory`, defaults.memory),
      desiredCount: int(`${prefix}DesiredCount`, defaults.desiredCount),
      minCapacity: int(`${prefix}MinCapacity`, defaults.minCapacity),
      maxCapacity: int(`${prefix}MaxCapacity`, defaults.maxCapacity),
    };
    checkFargate(`quire:${prefix}Cpu/${prefix}Memory`, s.cpu, s.memory, problems);
    need(s.minCapacity >= 1, `quire:${prefix}MinCapacity must be at least 1 (it is ${s.minCapacity})`);
    need(
      s.minCapacity <= s.desiredCount && s.desiredCount <= s.maxCapacity,
      `quire:${prefix}: minCapacity ≤ desiredCount ≤ maxCapacity (${s.minCapacity}, ${s.desiredCount}, ${s.maxCapacity})`,
    );
    return s;
  };

  const config: StackConfig = {
    stack,
    region,
    availabilityZones,
    vpcCidr: str("vpcCidr", "10.40.0.0/16"),
    natGateways: int("natGateways", 1),
    domain: str("domain"),
    hostedZoneId: raw("hostedZoneId"),
    imageTag: str("imageTag"),
    cpuArchitecture: str("cpuArchitecture", "X86_64") as StackConfig["cpuArchitecture"],
    api: sizing("api", { cpu: 1024, memory: 2048, desiredCount: 2, minCapacity: 2, maxCapacity: 6 }),
    worker: sizing("worker", { cpu: 1024, memory: 2048, desiredCount: 2, minCapacity: 2, maxCapacity: 4 }),
    cpuTargetPercent: int("cpuTargetPercent", 60),
    db: {
      instanceClass: str("dbInstanceClass", "db.t4g.medium"),
      engineVersion: str("dbEngineVersion", "16"),
      allocatedStorageGb: int("dbAllocatedStorageGb", 50),
      maxAllocatedStorageGb: int("dbMaxAllocatedStorageGb", 500),
      backupRetentionDays: int("dbBackupRetentionDays", 7),
    },
    deletionProtection: bool("deletionProtection", true),
    nats: {
      image: str("natsImage", "public.ecr.aws/docker/library/nats:2.11-alpine"),
      cpu: int("natsCpu", 512),
      memory: int("natsMemory", 1024),
    },
    logRetentionDays: int("logRetentionDays", 30),
    adminUser: str("adminUser", "admin"),
    summaryModelKey: raw("summaryModelKey"),
    modelFetchImage: str("modelFetchImage", "public.ecr.aws/aws-cli/aws-cli:2.22.0"),
    secretRecoveryWindowDays: int("secretRecoveryWindowDays", 30),
    telemetry: telemetry(raw("otlpEndpoint"), raw("traceSampling"), problems),
  };

  need(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/.test(stack), `stack name ${JSON.stringify(stack)}: lowercase letters, digits and dashes`);
  need(
    /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/.test(config.domain) || config.domain === "",
    `quire:domain must be a lowercase DNS name (it is ${JSON.stringify(config.domain)})`,
  );
  need(
    /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(config.imageTag) || config.imageTag === "",
    `quire:imageTag is not a valid image tag (${JSON.stringify(config.imageTag)})`,
  );
  need(config.imageTag !== "latest", "quire:imageTag: the repository's tags are immutable; name a build, not \"latest\"");
  need(
    config.cpuArchitecture === "X86_64" || config.cpuArchitecture === "ARM64",
    `quire:cpuArchitecture must be X86_64 or ARM64 (it is ${config.cpuArchitecture})`,
  );
  need(
    config.natGateways === 1 || config.natGateways === availabilityZones.length,
    `quire:natGateways must be 1 or the number of zones, ${availabilityZones.length} (it is ${config.natGateways})`,
  );
  need(
    config.cpuTargetPercent >= 10 && config.cpuTargetPercent <= 90,
    `quire:cpuTargetPercent must be between 10 and 90 (it is ${config.cpuTargetPercent})`,
  );
  need(/^16(\.\d+)?$/.test(config.db.engineVersion), `quire:dbEngineVersion must be PostgreSQL 16 or 16.x (it is ${config.db.engineVersion})`);
  need(/^db\.[a-z0-9]+\.[a-z0-9]+$/.test(config.db.instanceClass), `quire:dbInstanceClass is not an RDS class (${config.db.instanceClass})`);
  need(
    config.db.backupRetentionDays >= 7 && config.db.backupRetentionDays <= 35,
    `quire:dbBackupRetentionDays must be between 7 and 35 (it is ${config.db.backupRetentionDays})`,
  );
  need(config.db.allocatedStorageGb >= 20, `quire:dbAllocatedStorageGb must be at least 20 (it is ${config.db.allocatedStorageGb})`);
  need(
    config.db.maxAllocatedStorageGb >= config.db.allocatedStorageGb,
    "quire:dbMaxAllocatedStorageGb must be at least dbAllocatedStorageGb",
  );
  checkFargate("quire:natsCpu/natsMemory", config.nats.cpu, config.nats.memory, problems);
  need(
    LOG_RETENTION_DAYS.includes(config.logRetentionDays),
    `quire:logRetentionDays must be one of CloudWatch's periods (${LOG_RETENTION_DAYS.join(", ")}); it is ${config.logRetentionDays}`,
  );
  need(/^[A-Za-z0-9_.-]{1,64}$/.test(config.adminUser), `quire:adminUser is not a valid username (${JSON.stringify(config.adminUser)})`);
  need(
    config.summaryModelKey === undefined || /^[A-Za-z0-9_.\-/]+\.gguf$/.test(config.summaryModelKey),
    `quire:summaryModelKey must name a .gguf file under models/ (it is ${JSON.stringify(config.summaryModelKey)})`,
  );
  need(
    config.secretRecoveryWindowDays === 0 ||
      (config.secretRecoveryWindowDays >= 7 && config.secretRecoveryWindowDays <= 30),
    `quire:secretRecoveryWindowDays must be 0 or 7–30 (it is ${config.secretRecoveryWindowDays})`,
  );

  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

// As Quire checks `telemetry.otlp_endpoint` (an http or https URL with a host), and more: the URL
// is plain text in the task definition, so no credentials, and Quire appends `/v1/traces` and
// `/v1/metrics` to it, so no query or fragment.
function telemetry(endpoint: string | undefined, sampling: string | undefined, problems: string[]): TelemetryConfig | undefined {
  if (endpoint === undefined) {
    if (sampling !== undefined) problems.push("quire:traceSampling is set, but quire:otlpEndpoint is not (nothing is exported)");
    return undefined;
  }
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
    problems.push(`quire:otlpEndpoint must be an http:// or https:// URL with a host (it is ${JSON.stringify(endpoint)})`);
  } else if (url.username !== "" || url.password !== "") {
    problems.push("quire:otlpEndpoint must not carry credentials (the task's environment is plain text)");
  } else if (url.search !== "" || url.hash !== "" || endpoint.includes("?") || endpoint.includes("#")) {
    problems.push(`quire:otlpEndpoint is a base URL: no query or fragment (it is ${JSON.stringify(endpoint)})`);
  }
  let traceSampling = 1.0;
  if (sampling !== undefined) {
    // A plain decimal: Quire reads the variable as a number only when it looks like one.
    if (!/^\d+(\.\d+)?$/.test(sampling) || Number(sampling) > 1) {
      problems.push(`quire:traceSampling must be a number from 0 to 1 (it is ${JSON.stringify(sampling)})`);
    } else {
      traceSampling = Number(sampling);
    }
  }
  const otlpPort = url?.port ? Number(url.port) : url?.protocol === "https:" ? 443 : 80;
  return { otlpEndpoint: endpoint, otlpPort, traceSampling };
}

function checkFargate(key: string, cpu: number, memory: number, problems: string[]) {
  const allowed = FARGATE_MEMORY[cpu];
  if (!allowed) {
    problems.push(`${key}: Fargate CPU must be one of ${Object.keys(FARGATE_MEMORY).join(", ")} (it is ${cpu})`);
    return;
  }
  const [min, max, step] = allowed;
  if (memory < min || memory > max || (memory - min) % step !== 0 || (cpu === 256 && memory === 1536)) {
    problems.push(`${key}: with ${cpu} CPU units Fargate takes ${min}–${max} MiB in steps of ${step} (it is ${memory})`);
  }
}
