// Builds a stack under Pulumi's mocks and records every resource's resolved inputs, so tests can
// assert on exactly what would be sent to AWS.

import * as fs from "node:fs";
import * as path from "node:path";

import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";

import { type ConfigLookup, loadConfig, type StackConfig } from "../src/config";

export const ACCOUNT = "123456789012";
export const REGION = "eu-west-1";
export const ROOT = path.resolve(__dirname, "..");

export interface Recorded {
  type: string;
  name: string;
  id: string;
  inputs: any;
  state: any;
}

// Pulumi's wire marker of a secret value: `{ [SECRET_SIG]: SECRET_VALUE, value }`.
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** Inputs with secret markers replaced by their values (what the provider would receive). */
function unwrapSecrets(v: any): any {
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (v && typeof v === "object") {
    if (SECRET_SIG in v) return unwrapSecrets(v.value);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
  }
  return v;
}

/** `aws:ec2/securityGroup:SecurityGroup` -> `securitygroup`. */
function shortType(type: string): string {
  return (type.split(":").pop() ?? type).toLowerCase();
}

// Deterministic "random" values, so a test that fails fails the same way every time.
function fakePassword(name: string, length: number): string {
  const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  let seed = [...name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
  let out = "";
  for (let i = 0; i < length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    out += alphabet[seed % alphabet.length];
  }
  return out;
}

/** Resolved outputs the real provider would compute, for the types whose outputs the program reads. */
function fakeState(type: string, name: string, inputs: any): Record<string, unknown> {
  const kind = shortType(type);
  const service = type.split(":")[1]?.split("/")[0] ?? "x";
  const physical: string = inputs.name ?? inputs.identifier ?? `${name}-0a1b2c`;
  const state: Record<string, unknown> = {
    ...inputs,
    name: physical,
    arn: `arn:aws:${service}:${REGION}:${ACCOUNT}:${kind}/${physical}`,
  };
  switch (type) {
    case "random:index/randomPassword:RandomPassword":
      state.result = fakePassword(name, inputs.length);
      break;
    case "aws:rds/instance:Instance":
      state.address = `${physical}.c0ffee.${REGION}.rds.amazonaws.com`;
      state.endpoint = `${state.address}:5432`;
      break;
    case "aws:lb/loadBalancer:LoadBalancer":
      state.dnsName = `${physical}-123456.${REGION}.elb.amazonaws.com`;
      state.zoneId = "Z32O12XQLNTSW2";
      break;
    case "aws:ecr/repository:Repository":
      state.repositoryUrl = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${physical}`;
      break;
    case "aws:acm/certificate:Certificate":
      state.domainValidationOptions = [
        {
          domainName: inputs.domainName,
          resourceRecordName: `_x1.${inputs.domainName}.`,
          resourceRecordType: "CNAME",
          resourceRecordValue: "_x2.acm-validations.aws.",
        },
      ];
      break;
    case "aws:acm/certificateValidation:CertificateValidation":
      state.certificateArn = inputs.certificateArn;
      break;
    case "aws:s3/bucket:Bucket":
      state.bucket = inputs.bucket ?? `${inputs.bucketPrefix}20250101`;
      state.arn = `arn:aws:s3:::${state.bucket}`;
      break;
    case "aws:kms/key:Key":
      state.keyId = `key-${name}`;
      break;
    case "aws:route53/record:Record":
      state.fqdn = inputs.name;
      break;
  }
  return state;
}

export class Harness {
  readonly resources: Recorded[] = [];

  /** Installs the mocks; call before anything creates a resource. */
  async install(stack: string): Promise<void> {
    await pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          const id = `${shortType(args.type)}-${args.name}`;
          const inputs = unwrapSecrets(args.inputs);
          const state = fakeState(args.type, args.name, inputs);
          this.resources.push({ type: args.type, name: args.name, id, inputs, state });
          return { id, state };
        },
        call: (args) => {
          throw new Error(`the program should make no provider calls (it called ${args.token})`);
        },
      },
      "quire",
      stack,
      false,
    );
  }

  /** Waits until every resource has been registered (no new one for a while). */
  async settle(): Promise<void> {
    let seen = -1;
    let quiet = 0;
    for (let i = 0; i < 500 && quiet < 5; i++) {
      await new Promise((r) => setTimeout(r, 10));
      if (this.resources.length === seen) quiet++;
      else {
        seen = this.resources.length;
        quiet = 0;
      }
    }
  }

  ofType(type: string): Recorded[] {
    return this.resources.filter((r) => r.type === type);
  }

  one(type: string, name: string): Recorded {
    const found = this.resources.filter((r) => r.type === type && r.name === name);
    if (found.length !== 1) throw new Error(`expected one ${type} named ${name}, found ${found.length}`);
    return found[0];
  }

  byId(id: string): Recorded {
    const found = this.resources.find((r) => r.id === id || r.state.arn === id);
    if (!found) throw new Error(`no resource with id or ARN ${id}`);
    return found;
  }
}

/** The `config:` map of Pulumi.<stack>.yaml, as the string values Pulumi hands a program. */
export function stackConfigValues(stack: string): Record<string, string> {
  const file = parse(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) as { config: Record<string, unknown> };
  return Object.fromEntries(
    Object.entries(file.config).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
  );
}

export function lookupFrom(values: Record<string, string>): ConfigLookup {
  return (key) => values[key];
}

export function stackConfig(stack: string, overrides: Record<string, string> = {}): StackConfig {
  return loadConfig(stack, lookupFrom({ ...stackConfigValues(stack), ...overrides }));
}

export function policyOf(r: Recorded): { Statement: any[] } {
  return JSON.parse(r.inputs.policy);
}

export function containersOf(taskDefinition: Recorded): any[] {
  return JSON.parse(taskDefinition.inputs.containerDefinitions);
}
