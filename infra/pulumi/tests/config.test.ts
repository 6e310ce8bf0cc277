// The pure parts: stack configuration and its checks, the subnet layout, NATS's configuration,
// Quire's environment. No Pulumi runtime needed.

import * as assert from "node:assert/strict";
import { describe, test } from "node:test";

import { addresses, contains, parseCidr, subnetLayout } from "../src/cidr";
import { ConfigError } from "../src/config";
import { natsConfig } from "../src/nats";
import { decimal, QUIRE_SECRET_NAMES, quireEnvironment } from "../src/quireEnv";
import { stackConfig } from "./harness";
import { readStructs, unknownSetting } from "./settings";

const problemsOf = (stack: string, overrides: Record<string, string>): string[] => {
  try {
    stackConfig(stack, overrides);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
};

describe("stack configuration", () => {
  test("both stacks load; prod is protected and larger, dev is not protected", () => {
    const prod = stackConfig("prod");
    const dev = stackConfig("dev");
    assert.equal(prod.deletionProtection, true);
    assert.equal(dev.deletionProtection, false);
    assert.ok(prod.db.backupRetentionDays >= 7, "prod backups");
    assert.ok(dev.db.backupRetentionDays >= 7, "dev backups");
    assert.equal(prod.natGateways, 2);
    assert.equal(dev.natGateways, 1);
    assert.ok(prod.api.minCapacity >= 2, "prod runs at least two api nodes");
    assert.deepEqual(prod.availabilityZones, ["eu-west-1a", "eu-west-1b"]);
    assert.equal(prod.domain, "api.quire.example.org");
    assert.equal(prod.imageTag, "0.1.0");
  });

  test("bad values are refused, each named by its key, all at once", () => {
    const problems = problemsOf("prod", {
      "quire:dbBackupRetentionDays": "3",
      "quire:imageTag": "latest",
      "quire:apiMinCapacity": "5",
      "quire:workerCpu": "1000",
      "quire:logRetentionDays": "10",
      "quire:natGateways": "3",
      "quire:deletionProtection": "yes",
      "quire:dbEngineVersion": "15.4",
    });
    const expectKey = (key: string) => assert.ok(problems.some((p) => p.includes(key)), `no problem names ${key}: ${problems.join("; ")}`);
    for (const key of ["dbBackupRetentionDays", "imageTag", "api", "workerCpu", "logRetentionDays", "natGateways", "deletionProtection", "dbEngineVersion"]) {
      expectKey(key);
    }
    assert.equal(problems.length, 8, problems.join("\n"));
  });

  test("the domain, the image tag and the region are required", () => {
    const problems = problemsOf("dev", { "quire:domain": "", "quire:imageTag": "", "aws:region": "" });
    assert.ok(problems.some((p) => p.startsWith("quire:domain is required")), problems.join("; "));
    assert.ok(problems.some((p) => p.startsWith("quire:imageTag is required")), problems.join("; "));
    assert.ok(problems.some((p) => p.startsWith("aws:region is required")), problems.join("; "));
  });

  test("Fargate sizes must be ones Fargate offers", () => {
    assert.deepEqual(problemsOf("dev", { "quire:apiCpu": "256", "quire:apiMemory": "512" }), []);
    assert.equal(problemsOf("dev", { "quire:apiCpu": "256", "quire:apiMemory": "1536" }).length, 1);
    assert.equal(problemsOf("dev", { "quire:apiCpu": "1024", "quire:apiMemory": "1024" }).length, 1);
  });

  test("a model key must be a GGUF file", () => {
    assert.deepEqual(problemsOf("dev", { "quire:summaryModelKey": "SmolLM2-135M-Instruct.Q4_1.gguf" }), []);
    assert.equal(problemsOf("dev", { "quire:summaryModelKey": "../etc/passwd" }).length, 1);
  });
});

describe("telemetry configuration", () => {
  test("unset by default: nothing is exported", () => {
    assert.equal(stackConfig("prod").telemetry, undefined);
    assert.equal(stackConfig("dev").telemetry, undefined);
  });

  test("an OTLP endpoint, sampling every trace unless told otherwise", () => {
    assert.deepEqual(stackConfig("dev", { "quire:otlpEndpoint": "http://otel-collector.dev.quire.internal:4318" }).telemetry, {
      otlpEndpoint: "http://otel-collector.dev.quire.internal:4318",
      otlpPort: 4318,
      traceSampling: 1.0,
    });
    assert.deepEqual(stackConfig("prod", { "quire:otlpEndpoint": "https://otlp.example.org", "quire:traceSampling": "0.25" }).telemetry, {
      otlpEndpoint: "https://otlp.example.org",
      otlpPort: 443,
      traceSampling: 0.25,
    });
    assert.equal(stackConfig("dev", { "quire:otlpEndpoint": "http://10.40.16.9" }).telemetry?.otlpPort, 80);
    assert.equal(stackConfig("dev", { "quire:otlpEndpoint": "http://c:4318", "quire:traceSampling": "0" }).telemetry?.traceSampling, 0);
    assert.equal(stackConfig("dev", { "quire:otlpEndpoint": "http://c:4318", "quire:traceSampling": "1" }).telemetry?.traceSampling, 1);
  });

  test("an endpoint that is not an http(s) URL with a host is refused", () => {
    for (const endpoint of [
      "otel-collector:4318",
      "otel-collector",
      "grpc://otel-collector:4317",
      "ftp://otel-collector",
      "http://",
      "http://:4318",
      "http://user:secret@otel-collector:4318",
      "http://otel-collector:4318/?x=1",
      "http://otel-collector:4318#v1",
      "http://otel-collector:99999",
    ]) {
      const problems = problemsOf("dev", { "quire:otlpEndpoint": endpoint });
      assert.equal(problems.length, 1, `${endpoint}: ${problems.join("; ")}`);
      assert.match(problems[0], /^quire:otlpEndpoint /, endpoint);
    }
  });

  test("sampling must be a number from 0 to 1, and needs an endpoint", () => {
    for (const sampling of ["1.5", "-0.1", "2", "half", "1e-3", "0.5x", "NaN"]) {
      const problems = problemsOf("dev", { "quire:otlpEndpoint": "http://c:4318", "quire:traceSampling": sampling });
      assert.equal(problems.length, 1, `${sampling}: ${problems.join("; ")}`);
      assert.match(problems[0], /^quire:traceSampling must be a number from 0 to 1/, sampling);
    }
    const problems = problemsOf("dev", { "quire:traceSampling": "0.5" });
    assert.equal(problems.length, 1, problems.join("; "));
    assert.match(problems[0], /^quire:traceSampling is set, but quire:otlpEndpoint is not/);
    // reported with every other problem at once
    assert.equal(problemsOf("dev", { "quire:otlpEndpoint": "collector", "quire:traceSampling": "7", "quire:imageTag": "latest" }).length, 3);
  });
});

describe("subnet layout", () => {
  test("public /26 and private /20 subnets inside the VPC, none overlapping", () => {
    const layout = subnetLayout("10.40.0.0/16", 3);
    const all = [...layout.public, ...layout.private];
    for (const c of all) assert.ok(contains("10.40.0.0/16", c.split("/")[0]), `${c} inside the VPC`);
    for (const a of all) {
      for (const b of all) {
        if (a === b) continue;
        const [ca, cb] = [parseCidr(a), parseCidr(b)];
        const endA = ca.base + 2 ** (32 - ca.prefix);
        const endB = cb.base + 2 ** (32 - cb.prefix);
        assert.ok(endA <= cb.base || endB <= ca.base, `${a} overlaps ${b}`);
      }
    }
    assert.deepEqual(layout.public, ["10.40.0.0/26", "10.40.0.64/26", "10.40.0.128/26"]);
    assert.deepEqual(layout.private, ["10.40.16.0/20", "10.40.32.0/20", "10.40.48.0/20"]);
  });

  test("refuses what it cannot lay out", () => {
    assert.throws(() => subnetLayout("10.0.0.0/8", 2), /must be a \/16/);
    assert.throws(() => subnetLayout("10.40.0.1/16", 2), /host bits/);
    assert.throws(() => addresses("10.0.0.0/16"), /larger than a \/24/);
    assert.equal(addresses("10.40.0.64/26").length, 64);
    assert.equal(addresses("10.40.0.64/26")[63], "10.40.0.127");
  });
});

describe("NATS configuration", () => {
  test("JetStream syncs every write; the cluster routes to all three nodes", () => {
    const conf = natsConfig(1, "prod.quire.internal", "quire-prod-nats");
    assert.match(conf, /server_name: "nats-2"/);
    assert.match(conf, /jetstream \{\n {2}store_dir: "\/data\/jetstream"\n {2}sync_interval: always\n/);
    assert.deepEqual(
      [...conf.matchAll(/"nats-route:\/\/([^"]+)"/g)].map((m) => m[1]),
      ["nats-1.prod.quire.internal:6222", "nats-2.prod.quire.internal:6222", "nats-3.prod.quire.internal:6222"],
    );
    assert.match(conf, /password: \$NATS_PASSWORD/);
    assert.match(conf, /http: "127\.0\.0\.1:8222"/, "monitoring only on localhost");
  });
});

describe("Quire's environment", () => {
  const base = { bucket: "b", region: "eu-west-1", adminUser: "admin", trustedProxies: ["10.40.0.5"] };
  test("never carries a secret", () => {
    for (const kind of ["api", "worker"] as const) {
      const names = quireEnvironment({ ...base, kind }).map((e) => e.name);
      for (const secret of QUIRE_SECRET_NAMES) assert.ok(!names.includes(secret), `${secret} in ${kind}'s environment`);
    }
  });

  test("api nodes listen on all interfaces; workers do not serve HTTP", () => {
    const api = Object.fromEntries(quireEnvironment({ ...base, kind: "api" }).map((e) => [e.name, e.value]));
    const worker = Object.fromEntries(quireEnvironment({ ...base, kind: "worker" }).map((e) => [e.name, e.value]));
    assert.equal(api.QUIRE_LISTEN, "0.0.0.0:8080");
    assert.equal(api.QUIRE_CLUSTER__ROLES, "api");
    assert.equal(api.QUIRE_API__TRUSTED_PROXIES, '["10.40.0.5"]');
    assert.equal(worker.QUIRE_LISTEN, undefined);
    assert.equal(worker.QUIRE_CLUSTER__ROLES, "actors,projections");
    assert.equal(worker.QUIRE_TEXTS__URL, "s3://b/texts");
  });

  test("telemetry: the collector, the service name and the sampling ratio on both kinds, only when set", () => {
    const telemetry = { otlpEndpoint: "http://otel-collector:4318", serviceName: "quire-dev", traceSampling: 0.1 };
    const structs = readStructs();
    for (const kind of ["api", "worker"] as const) {
      const env = Object.fromEntries(quireEnvironment({ ...base, kind, telemetry }).map((e) => [e.name, e.value]));
      assert.equal(env.QUIRE_TELEMETRY__OTLP_ENDPOINT, "http://otel-collector:4318");
      assert.equal(env.QUIRE_TELEMETRY__SERVICE_NAME, "quire-dev");
      assert.equal(env.QUIRE_TELEMETRY__SAMPLING_RATIO, "0.1");
      // Prometheus stays at Quire's default (on)
      assert.equal(env.QUIRE_TELEMETRY__PROMETHEUS, undefined);
      if (structs) {
        assert.deepEqual(Object.keys(env).map((n) => unknownSetting(structs, n)).filter(Boolean), []);
      }
      const without = quireEnvironment({ ...base, kind }).map((e) => e.name);
      assert.deepEqual(without.filter((n) => n.startsWith("QUIRE_TELEMETRY__")), [], `${kind} without telemetry`);
    }
  });

  test("the sampling ratio is written as Quire reads a float: a decimal point, no exponent", () => {
    assert.equal(decimal(1), "1.0");
    assert.equal(decimal(0), "0.0");
    assert.equal(decimal(0.25), "0.25");
    assert.equal(decimal(1e-7), "0.0000001");
  });
});
