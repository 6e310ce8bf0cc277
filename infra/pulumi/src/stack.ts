// The whole deployment, from a checked configuration. `index.ts` calls this with the stack's
// Pulumi config; the unit tests call it under Pulumi's mocks.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import type { StackConfig } from "./config";
import { createDatabase, type Database } from "./database";
import { createNats, type NatsCluster } from "./nats";
import { createNetwork, type Network } from "./network";
import { createAppSecrets } from "./secrets";
import { createSecurityGroups, type SecurityGroups } from "./security";
import { createQuireServices, type QuireServices } from "./service";
import { createStorage, type Storage } from "./storage";

export interface QuireStack {
  network: Network;
  securityGroups: SecurityGroups;
  storage: Storage;
  cluster: aws.ecs.Cluster;
  database: Database;
  nats: NatsCluster;
  quire: QuireServices;
  outputs: {
    albDnsName: pulumi.Output<string>;
    apiUrl: string;
    ecrRepositoryUrl: pulumi.Output<string>;
    bucketName: pulumi.Output<string>;
    databaseEndpoint: pulumi.Output<string>;
    natsUrl: string;
    certificateValidation: pulumi.Output<{ name?: string; type?: string; value?: string }[]>;
  };
}

export function buildStack(cfg: StackConfig): QuireStack {
  const name = `quire-${cfg.stack}`;
  const network = createNetwork(cfg);
  const securityGroups = createSecurityGroups(cfg, network);
  const storage = createStorage(cfg);

  const cluster = new aws.ecs.Cluster("cluster", {
    name,
    settings: [{ name: "containerInsights", value: "enabled" }],
  });
  const namespaceName = `${cfg.stack}.quire.internal`;
  const namespace = new aws.servicediscovery.PrivateDnsNamespace("internal", {
    name: namespaceName,
    vpc: network.vpc.id,
    description: `Quire ${cfg.stack}: private names (NATS nodes)`,
  });

  const appSecrets = createAppSecrets(cfg);
  const database = createDatabase(cfg, network, securityGroups);
  const nats = createNats(cfg, network, securityGroups, cluster, namespace, namespaceName);
  const quire = createQuireServices(cfg, network, securityGroups, cluster, storage, database, nats, appSecrets);

  return {
    network,
    securityGroups,
    storage,
    cluster,
    database,
    nats,
    quire,
    outputs: {
      albDnsName: quire.alb.dnsName,
      apiUrl: `https://${cfg.domain}`,
      ecrRepositoryUrl: storage.repository.repositoryUrl,
      bucketName: storage.bucket.bucket,
      databaseEndpoint: database.instance.address,
      natsUrl: nats.url,
      certificateValidation: quire.certificate.domainValidationOptions.apply((options) =>
        options.map((o) => ({ name: o.resourceRecordName, type: o.resourceRecordType, value: o.resourceRecordValue })),
      ),
    },
  };
}
