// PostgreSQL 16 on RDS: Multi-AZ, encrypted, private, backed up; TLS required. Quire migrates
// the schema itself when a node starts.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import type { StackConfig } from "./config";
import type { Network } from "./network";
import { generatedPassword, storedSecret } from "./secrets";
import type { SecurityGroups } from "./security";

export const DB_NAME = "quire";
export const DB_USER = "quire";
export const DB_PORT = 5432;

export interface Database {
  instance: aws.rds.Instance;
  subnetGroup: aws.rds.SubnetGroup;
  /** The whole connection URL (it holds the password): QUIRE_DATABASE_URL. */
  urlSecret: aws.secretsmanager.Secret;
  /** The master password alone, for operators (no task reads it). */
  passwordSecret: aws.secretsmanager.Secret;
}

export function createDatabase(cfg: StackConfig, net: Network, sgs: SecurityGroups): Database {
  const name = `quire-${cfg.stack}`;
  const password = generatedPassword("db-password", 40);

  const subnetGroup = new aws.rds.SubnetGroup("db", {
    name: `${name}-db`,
    description: "Quire PostgreSQL: private subnets",
    subnetIds: net.privateSubnets.map((s) => s.id),
  });

  const family = "postgres16";
  const parameters = new aws.rds.ParameterGroup("db", {
    name: `${name}-pg16`,
    family,
    description: "Quire: TLS only, slow statements logged",
    parameters: [
      { name: "rds.force_ssl", value: "1" },
      { name: "log_min_duration_statement", value: "1000" },
    ],
  });

  const instance = new aws.rds.Instance("db", {
    identifier: `${name}-db`,
    engine: "postgres",
    engineVersion: cfg.db.engineVersion,
    instanceClass: cfg.db.instanceClass,
    dbName: DB_NAME,
    username: DB_USER,
    password: password.result,
    port: DB_PORT,
    parameterGroupName: parameters.name,

    multiAz: true,
    dbSubnetGroupName: subnetGroup.name,
    vpcSecurityGroupIds: [sgs.db.id],
    publiclyAccessible: false,

    storageType: "gp3",
    allocatedStorage: cfg.db.allocatedStorageGb,
    maxAllocatedStorage: cfg.db.maxAllocatedStorageGb,
    storageEncrypted: true,

    backupRetentionPeriod: cfg.db.backupRetentionDays,
    backupWindow: "02:00-02:30",
    maintenanceWindow: "sun:03:00-sun:04:00",
    copyTagsToSnapshot: true,
    deleteAutomatedBackups: false,
    deletionProtection: cfg.deletionProtection,
    skipFinalSnapshot: false,
    finalSnapshotIdentifier: `${name}-db-final`,

    autoMinorVersionUpgrade: true,
    allowMajorVersionUpgrade: false,
    applyImmediately: false,
    caCertIdentifier: "rds-ca-rsa2048-g1",
    performanceInsightsEnabled: true,
    performanceInsightsRetentionPeriod: 7,
    enabledCloudwatchLogsExports: ["postgresql", "upgrade"],
  });

  const passwordSecret = storedSecret(
    cfg,
    "db-password",
    `Quire ${cfg.stack}: PostgreSQL master credentials`,
    pulumi.jsonStringify({
      engine: "postgres",
      host: instance.address,
      port: DB_PORT,
      dbname: DB_NAME,
      username: DB_USER,
      password: password.result,
    }),
  );
  const urlSecret = storedSecret(
    cfg,
    "database-url",
    `Quire ${cfg.stack}: QUIRE_DATABASE_URL`,
    pulumi.interpolate`postgres://${DB_USER}:${password.result}@${instance.address}:${DB_PORT}/${DB_NAME}?sslmode=require`,
  );

  return { instance, subnetGroup, urlSecret, passwordSecret };
}
