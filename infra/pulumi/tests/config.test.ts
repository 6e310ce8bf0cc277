// The pure parts: stack configuration and its checks, the subnet layout, NATS's configuration,
// Quire's environment. No Pulumi runtime needed.

import * as assert from "node:assert/strict";
import { describe, test } from "node:test";

import { addresses, contains, parseCidr, subnetLayout } from "../src/cidr";
import { ConfigError } from "../src/config";
import { natsConfig } from "../src/nats";
import { QUIRE_SECRET_NAMES, quireEnvironment } from "../src/quireEnv";
import { stackConfig } from "./harness";

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
});
