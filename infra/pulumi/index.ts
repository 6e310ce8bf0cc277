// Quire on AWS. The stack's settings are `quire:*` keys in Pulumi.<stack>.yaml (see README.md).

import * as pulumi from "@pulumi/pulumi";

import { loadConfig } from "./src/config";
import { buildStack } from "./src/stack";

const config = loadConfig(pulumi.getStack(), (key) => {
  const [namespace, name] = key.split(":");
  return new pulumi.Config(namespace).get(name);
});
const stack = buildStack(config);

export const albDnsName = stack.outputs.albDnsName;
export const apiUrl = stack.outputs.apiUrl;
export const ecrRepositoryUrl = stack.outputs.ecrRepositoryUrl;
export const bucketName = stack.outputs.bucketName;
export const databaseEndpoint = stack.outputs.databaseEndpoint;
export const natsUrl = stack.outputs.natsUrl;
/** The CNAME that validates the ALB's certificate (create it yourself when no hostedZoneId is set). */
export const certificateValidation = stack.outputs.certificateValidation;
