// Secrets Manager: generated passwords and the values derived from them. Each value Quire reads
// reaches its task as a `secrets` entry (valueFrom = the secret's ARN), never as plain
// environment, and only the task execution role can read them.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

import type { StackConfig } from "./config";

/** A secret and its current value. */
export function storedSecret(
  cfg: StackConfig,
  key: string,
  description: string,
  value: pulumi.Input<string>,
): aws.secretsmanager.Secret {
  const secret = new aws.secretsmanager.Secret(key, {
    name: `quire/${cfg.stack}/${key}`,
    description,
    recoveryWindowInDays: cfg.secretRecoveryWindowDays,
  });
  new aws.secretsmanager.SecretVersion(key, {
    secretId: secret.id,
    secretString: pulumi.secret(value),
  });
  return secret;
}

/**
 * A generated password of letters and digits only: it goes into URLs (database, NATS) where
 * other characters would need escaping.
 */
export function generatedPassword(key: string, length: number): random.RandomPassword {
  return new random.RandomPassword(key, { length, special: false, minLower: 4, minUpper: 4, minNumeric: 4 });
}

export interface AppSecrets {
  adminPassword: aws.secretsmanager.Secret;
  tokenSecret: aws.secretsmanager.Secret;
}

export function createAppSecrets(cfg: StackConfig): AppSecrets {
  const admin = generatedPassword("admin-password", 32);
  // Signs bearer tokens; the same on every node; Quire wants at least 32 characters.
  const token = generatedPassword("token-secret", 64);
  return {
    adminPassword: storedSecret(cfg, "admin-password", `Quire ${cfg.stack}: password of the first admin (${cfg.adminUser})`, admin.result),
    tokenSecret: storedSecret(cfg, "token-secret", `Quire ${cfg.stack}: api.token_secret, signs bearer tokens`, token.result),
  };
}
