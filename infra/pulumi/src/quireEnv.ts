// What a Quire node is told, as `QUIRE_*` variables (nested settings joined by `__`, see
// src/config.rs in the repository). Quire refuses unknown `QUIRE_` keys at start-up, so only
// settings that exist appear here; the unit tests check every name against config.rs.

/** The two kinds of Quire task: HTTP nodes behind the ALB, and workers. */
export type QuireNodeKind = "api" | "worker";

export const QUIRE_PORT = 8080;
export const DATA_DIR = "/var/lib/quire";
export const MODELS_DIR = "/models";

/** Roles per kind (`cluster.roles`, one comma-separated string in the environment). */
export const ROLES: Record<QuireNodeKind, string> = {
  api: "api",
  worker: "actors,projections",
};

/** Secret values, by the variable that carries them; never in `environment`. */
export type QuireSecretName =
  | "QUIRE_DATABASE_URL"
  | "QUIRE_ADMIN_PASSWORD"
  | "QUIRE_API__TOKEN_SECRET"
  | "QUIRE_CLUSTER__NATS_URL";

export const QUIRE_SECRET_NAMES: QuireSecretName[] = [
  "QUIRE_DATABASE_URL",
  "QUIRE_ADMIN_PASSWORD",
  "QUIRE_API__TOKEN_SECRET",
  "QUIRE_CLUSTER__NATS_URL",
];

export interface QuireEnvOptions {
  kind: QuireNodeKind;
  bucket: string;
  region: string;
  adminUser: string;
  /** The addresses the ALB's nodes can have (every address of the public subnets). */
  trustedProxies: string[];
  /** A GGUF model copied into MODELS_DIR before start (file name), or none. */
  modelFile?: string;
  /** Where to send traces and metrics, or none (nothing is exported). */
  telemetry?: { otlpEndpoint: string; serviceName: string; traceSampling: number };
}

export interface EnvVar {
  name: string;
  value: string;
}

export function quireEnvironment(o: QuireEnvOptions): EnvVar[] {
  const env: Record<string, string> = {
    QUIRE_CLUSTER__ROLES: ROLES[o.kind],
    // The lease bucket on the three-node JetStream cluster: R3.
    QUIRE_CLUSTER__REPLICAS: "3",
    QUIRE_DATA_DIR: DATA_DIR,
    QUIRE_LOG_FORMAT: "json",
    QUIRE_ADMIN_USER: o.adminUser,
    // Book texts in the stack's bucket; credentials come from the task role.
    QUIRE_TEXTS__URL: `s3://${o.bucket}/texts`,
    QUIRE_TEXTS__REGION: o.region,
  };
  if (o.kind === "api") {
    env.QUIRE_LISTEN = `0.0.0.0:${QUIRE_PORT}`;
    // Rate limits and login throttles are per client address: behind the ALB that address is
    // the right-most X-Forwarded-For entry written by an ALB node, and ALB nodes only ever have
    // addresses of the public subnets, where nothing else runs.
    env.QUIRE_API__TRUSTED_PROXIES = JSON.stringify(o.trustedProxies);
    // The ALB keeps idle connections to targets for up to its idle timeout (60 s); Quire must
    // not close them first, or a request racing the close gets a 502. The ALB reads whole
    // request heads before forwarding, so slow heads never reach Quire.
    env.QUIRE_HTTP__HEADER_READ_TIMEOUT_SECS = "75";
    env.QUIRE_HTTP__IDLE_TIMEOUT_SECS = "75";
  }
  if (o.modelFile !== undefined) {
    env.QUIRE_SUMMARIES__BACKEND = "gguf";
    env.QUIRE_SUMMARIES__MODEL_PATH = `${MODELS_DIR}/${o.modelFile}`;
  }
  if (o.telemetry !== undefined) {
    // Traces and metrics over OTLP/HTTP. `GET /metrics` (Prometheus) stays on, as by default;
    // the ALB answers 404 for it, so it is not served to the internet.
    env.QUIRE_TELEMETRY__OTLP_ENDPOINT = o.telemetry.otlpEndpoint;
    env.QUIRE_TELEMETRY__SERVICE_NAME = o.telemetry.serviceName;
    env.QUIRE_TELEMETRY__SAMPLING_RATIO = decimal(o.telemetry.traceSampling);
  }
  return Object.entries(env)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => ({ name, value }));
}

/**
 * A number as Quire's settings loader reads a float from the environment: with a decimal point
 * and no exponent (`1` would do, but `1e-7` would be taken for a string).
 */
export function decimal(x: number): string {
  let s = String(x);
  if (/e/i.test(s)) s = x.toFixed(20).replace(/0+$/, "");
  return s.includes(".") ? s : `${s}.0`;
}
