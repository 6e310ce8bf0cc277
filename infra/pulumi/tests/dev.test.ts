// The dev stack with a hosted zone, a summary model and an OpenTelemetry collector, built with
// `buildStack` under mocks: what changes with the configuration.

import * as assert from "node:assert/strict";
import { before, test } from "node:test";

import { buildStack } from "../src/stack";
import { containersOf, Harness, stackConfig } from "./harness";
import { readStructs, unknownSetting } from "./settings";

const h = new Harness();
const MODEL = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const COLLECTOR = "http://otel-collector.dev.quire.internal:4318";

before(async () => {
  await h.install("dev");
  buildStack(
    stackConfig("dev", {
      "quire:hostedZoneId": "Z0HOSTEDZONE",
      "quire:summaryModelKey": MODEL,
      "quire:otlpEndpoint": COLLECTOR,
      "quire:traceSampling": "0.2",
    }),
  );
  await h.settle();
});

test("dev: no deletion protection, but still Multi-AZ, encrypted, private and backed up", () => {
  const db = h.one("aws:rds/instance:Instance", "db");
  assert.equal(db.inputs.deletionProtection, false);
  assert.equal(h.one("aws:lb/loadBalancer:LoadBalancer", "alb").inputs.enableDeletionProtection, false);
  assert.equal(db.inputs.multiAz, true);
  assert.equal(db.inputs.storageEncrypted, true);
  assert.equal(db.inputs.publiclyAccessible, false);
  assert.ok(db.inputs.backupRetentionPeriod >= 7, "backups");
  assert.equal(db.inputs.instanceClass, "db.t4g.medium");
});

test("dev: one NAT gateway serves both private subnets", () => {
  const nats = h.ofType("aws:ec2/natGateway:NatGateway");
  assert.equal(nats.length, 1);
  const routes = h.ofType("aws:ec2/route:Route").filter((r) => r.inputs.natGatewayId !== undefined);
  assert.deepEqual(routes.map((r) => r.inputs.natGatewayId), [nats[0].id, nats[0].id]);
});

test("with a hosted zone: the certificate is validated by DNS and the domain points at the ALB", () => {
  const records = h.ofType("aws:route53/record:Record");
  const validation = records.find((r) => r.name === "api-cert-validation")!;
  assert.equal(validation.inputs.zoneId, "Z0HOSTEDZONE");
  assert.equal(validation.inputs.type, "CNAME");
  assert.deepEqual(validation.inputs.records, ["_x2.acm-validations.aws."]);
  const certValidation = h.one("aws:acm/certificateValidation:CertificateValidation", "api");
  assert.deepEqual(certValidation.inputs.validationRecordFqdns, [validation.state.fqdn]);
  const alias = records.find((r) => r.name === "api-alias")!;
  assert.equal(alias.inputs.name, "api.dev.quire.example.org");
  assert.equal(alias.inputs.aliases[0].name, h.one("aws:lb/loadBalancer:LoadBalancer", "alb").state.dnsName);
});

test("dev: secrets are deleted at once when destroyed", () => {
  for (const s of h.ofType("aws:secretsmanager/secret:Secret")) assert.equal(s.inputs.recoveryWindowInDays, 0, s.name);
});

test("with a model: it is copied from the bucket before Quire starts, and Quire summarises with it", () => {
  const bucket = h.one("aws:s3/bucket:Bucket", "data").state.bucket;
  const structs = readStructs();
  for (const kind of ["api", "worker"]) {
    const td = h.one("aws:ecs/taskDefinition:TaskDefinition", kind);
    const containers = containersOf(td);
    const fetch = containers.find((c) => c.name === "fetch-model");
    const quire = containers.find((c) => c.name === "quire");
    assert.ok(fetch, `${kind}: a fetch-model container`);
    assert.equal(fetch.essential, false);
    assert.deepEqual(fetch.command.slice(-2), [`s3://${bucket}/models/${MODEL}`, "/models/SmolLM2-135M-Instruct.Q4_1.gguf"]);
    assert.deepEqual(quire.dependsOn, [{ containerName: "fetch-model", condition: "SUCCESS" }]);
    const env = Object.fromEntries(quire.environment.map((e: any) => [e.name, e.value]));
    assert.equal(env.QUIRE_SUMMARIES__BACKEND, "gguf");
    assert.equal(env.QUIRE_SUMMARIES__MODEL_PATH, "/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert.ok(td.inputs.volumes.some((v: any) => v.name === "models"), "a models volume");
    if (structs) {
      const unknown = quire.environment.map((e: any) => unknownSetting(structs, e.name)).filter(Boolean);
      assert.deepEqual(unknown, []);
    }
  }
});

test("with an OTLP endpoint: both kinds of node send their telemetry there, as quire-dev", () => {
  const structs = readStructs();
  for (const kind of ["api", "worker"]) {
    const quire = containersOf(h.one("aws:ecs/taskDefinition:TaskDefinition", kind)).find((c) => c.name === "quire");
    const env = Object.fromEntries(quire.environment.map((e: any) => [e.name, e.value]));
    assert.equal(env.QUIRE_TELEMETRY__OTLP_ENDPOINT, COLLECTOR, kind);
    assert.equal(env.QUIRE_TELEMETRY__SERVICE_NAME, "quire-dev", kind);
    assert.equal(env.QUIRE_TELEMETRY__SAMPLING_RATIO, "0.2", kind);
    assert.ok(!quire.secrets.some((s: any) => s.name.startsWith("QUIRE_TELEMETRY__")), `${kind}: telemetry is not a secret`);
    if (structs) {
      for (const name of ["QUIRE_TELEMETRY__OTLP_ENDPOINT", "QUIRE_TELEMETRY__SERVICE_NAME", "QUIRE_TELEMETRY__SAMPLING_RATIO"]) {
        assert.equal(unknownSetting(structs, name), undefined, name);
      }
    }
  }
});

test("with an OTLP endpoint on 4318: Quire's tasks may send to that port inside the VPC, nowhere else", () => {
  const quireSg = h.one("aws:ec2/securityGroup:SecurityGroup", "quire-sg");
  const otlp = h.ofType("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule").filter((r) => r.name === "quire-out-otlp");
  assert.equal(otlp.length, 1);
  assert.equal(otlp[0].inputs.securityGroupId, quireSg.id);
  assert.deepEqual([otlp[0].inputs.ipProtocol, otlp[0].inputs.fromPort, otlp[0].inputs.toPort], ["tcp", 4318, 4318]);
  assert.equal(otlp[0].inputs.cidrIpv4, h.one("aws:ec2/vpc:Vpc", "vpc").inputs.cidrBlock);
  assert.equal(otlp[0].inputs.cidrIpv4, "10.40.0.0/16");
  // and nothing may reach Quire's tasks but the ALB (metrics included)
  const ingress = h.ofType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").filter((r) => r.inputs.securityGroupId === quireSg.id);
  assert.deepEqual(ingress.map((r) => r.name), ["quire-in-alb"]);
});
