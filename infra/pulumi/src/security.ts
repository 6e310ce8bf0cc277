// Security groups and every rule between them. Rules are separate resources (one per rule) so
// groups can refer to each other. Only the ALB's group admits anything from the internet.
//
//   internet ──80/443──▶ alb ──8080──▶ quire ──5432──▶ db
//                                        ├───4222──▶ nats ◀─6222─▶ nats
//                                        │             └──2049──▶ efs
//                                        └───OTLP──▶ a collector in the VPC (with otlpEndpoint)

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import type { StackConfig } from "./config";
import type { Network } from "./network";
import { QUIRE_PORT } from "./quireEnv";

export const PORTS = { http: 80, https: 443, quire: QUIRE_PORT, postgres: 5432, natsClient: 4222, natsRoute: 6222, nfs: 2049 };

export interface SecurityGroups {
  alb: aws.ec2.SecurityGroup;
  quire: aws.ec2.SecurityGroup;
  db: aws.ec2.SecurityGroup;
  nats: aws.ec2.SecurityGroup;
  efs: aws.ec2.SecurityGroup;
}

export function createSecurityGroups(cfg: StackConfig, net: Network): SecurityGroups {
  const sg = (key: string, description: string) =>
    new aws.ec2.SecurityGroup(`${key}-sg`, {
      vpcId: net.vpc.id,
      description,
      tags: { Name: `quire-${cfg.stack}-${key}` },
    });
  const groups: SecurityGroups = {
    alb: sg("alb", "Quire ALB: HTTP/HTTPS from the internet"),
    quire: sg("quire", "Quire tasks (api and worker)"),
    db: sg("db", "Quire PostgreSQL: from Quire tasks only"),
    nats: sg("nats", "NATS JetStream cluster: clients from Quire tasks, routes between nodes"),
    efs: sg("efs", "EFS for NATS JetStream: NFS from NATS tasks only"),
  };

  const ingress = (name: string, group: aws.ec2.SecurityGroup, port: number, from: { cidr: string } | { group: aws.ec2.SecurityGroup }, description: string) =>
    new aws.vpc.SecurityGroupIngressRule(name, {
      securityGroupId: group.id,
      ipProtocol: "tcp",
      fromPort: port,
      toPort: port,
      description,
      ...("cidr" in from ? { cidrIpv4: from.cidr } : { referencedSecurityGroupId: from.group.id }),
    });
  const egress = (name: string, group: aws.ec2.SecurityGroup, port: number, to: { cidr: pulumi.Input<string> } | { group: aws.ec2.SecurityGroup }, description: string) =>
    new aws.vpc.SecurityGroupEgressRule(name, {
      securityGroupId: group.id,
      ipProtocol: "tcp",
      fromPort: port,
      toPort: port,
      description,
      ...("cidr" in to ? { cidrIpv4: to.cidr } : { referencedSecurityGroupId: to.group.id }),
    });

  // The ALB: the only group open to the internet.
  ingress("alb-in-http", groups.alb, PORTS.http, { cidr: "0.0.0.0/0" }, "HTTP from anywhere (redirected to HTTPS)");
  ingress("alb-in-https", groups.alb, PORTS.https, { cidr: "0.0.0.0/0" }, "HTTPS from anywhere");
  egress("alb-out-quire", groups.alb, PORTS.quire, { group: groups.quire }, "to Quire api tasks");

  // Quire tasks: HTTP from the ALB only; out to the database, NATS, and HTTPS (ECR, Secrets
  // Manager, CloudWatch Logs, S3 through the NAT gateway or the S3 endpoint).
  ingress("quire-in-alb", groups.quire, PORTS.quire, { group: groups.alb }, "HTTP from the ALB");
  egress("quire-out-db", groups.quire, PORTS.postgres, { group: groups.db }, "to PostgreSQL");
  egress("quire-out-nats", groups.quire, PORTS.natsClient, { group: groups.nats }, "to NATS");
  egress("quire-out-https", groups.quire, PORTS.https, { cidr: "0.0.0.0/0" }, "HTTPS to AWS APIs");
  // With an OpenTelemetry collector on another port than 443: to that port inside the VPC only
  // (OTLP over plain HTTP must not leave it).
  if (cfg.telemetry !== undefined && cfg.telemetry.otlpPort !== PORTS.https) {
    egress("quire-out-otlp", groups.quire, cfg.telemetry.otlpPort, { cidr: cfg.vpcCidr }, "OTLP/HTTP to the telemetry collector");
  }

  // PostgreSQL: from Quire tasks only; no egress.
  ingress("db-in-quire", groups.db, PORTS.postgres, { group: groups.quire }, "PostgreSQL from Quire tasks");

  // NATS: clients from Quire tasks, routes between the NATS nodes themselves.
  ingress("nats-in-quire", groups.nats, PORTS.natsClient, { group: groups.quire }, "NATS clients: Quire tasks");
  ingress("nats-in-routes", groups.nats, PORTS.natsRoute, { group: groups.nats }, "NATS cluster routes");
  egress("nats-out-routes", groups.nats, PORTS.natsRoute, { group: groups.nats }, "NATS cluster routes");
  egress("nats-out-efs", groups.nats, PORTS.nfs, { group: groups.efs }, "to EFS");
  egress("nats-out-https", groups.nats, PORTS.https, { cidr: "0.0.0.0/0" }, "HTTPS: image pulls, CloudWatch Logs, Secrets Manager");

  // EFS: NFS from NATS tasks only.
  ingress("efs-in-nats", groups.efs, PORTS.nfs, { group: groups.nats }, "NFS from NATS tasks");

  return groups;
}
