// A three-node NATS JetStream cluster on Fargate. Each node is its own ECS service (one task)
// with a stable name in the Cloud Map namespace (nats-1.<namespace>, …) and its own directory
// on an encrypted EFS file system (an access point per node), so its JetStream store survives
// the task. JetStream syncs every write (`sync_interval: always`), as Quire's README asks for
// production; Quire's lease bucket runs with three replicas.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import type { StackConfig } from "./config";
import { executionStatements, taskRole } from "./iam";
import type { Network } from "./network";
import { generatedPassword, storedSecret } from "./secrets";
import { PORTS, type SecurityGroups } from "./security";

export const NATS_NODES = 3;
export const NATS_USER = "quire";
const STORE_MOUNT = "/data";

export interface NatsCluster {
  /** The URL Quire is given (with its credentials): QUIRE_CLUSTER__NATS_URL. */
  urlSecret: aws.secretsmanager.Secret;
  /** The same URL without credentials, for outputs and logs. */
  url: string;
  services: aws.ecs.Service[];
  fileSystem: aws.efs.FileSystem;
  accessPoints: aws.efs.AccessPoint[];
  logGroup: aws.cloudwatch.LogGroup;
}

export function natsHost(i: number, namespace: string): string {
  return `nats-${i + 1}.${namespace}`;
}

/** The configuration of node `i`; `$NATS_PASSWORD` comes from the task's secret. */
export function natsConfig(i: number, namespace: string, clusterName: string): string {
  const routes = Array.from({ length: NATS_NODES }, (_, j) => `    "nats-route://${natsHost(j, namespace)}:${PORTS.natsRoute}"`);
  return [
    `server_name: "nats-${i + 1}"`,
    `listen: "0.0.0.0:${PORTS.natsClient}"`,
    `http: "127.0.0.1:8222"`, // monitoring, for the container health check only
    `max_payload: 1MB`,
    `jetstream {`,
    `  store_dir: "${STORE_MOUNT}/jetstream"`,
    `  sync_interval: always`,
    `  max_memory_store: 256MB`,
    `  max_file_store: 10GB`,
    `}`,
    `authorization {`,
    `  user: "${NATS_USER}"`,
    `  password: $NATS_PASSWORD`,
    `}`,
    `cluster {`,
    `  name: "${clusterName}"`,
    `  listen: "0.0.0.0:${PORTS.natsRoute}"`,
    `  routes: [`,
    ...routes,
    `  ]`,
    `}`,
    `lame_duck_duration: "30s"`,
    ``,
  ].join("\n");
}

export function createNats(
  cfg: StackConfig,
  net: Network,
  sgs: SecurityGroups,
  cluster: aws.ecs.Cluster,
  namespace: aws.servicediscovery.PrivateDnsNamespace,
  namespaceName: string,
): NatsCluster {
  const name = `quire-${cfg.stack}`;
  const clusterName = `${name}-nats`;

  const password = generatedPassword("nats-password", 32);
  const passwordSecret = storedSecret(cfg, "nats-password", `Quire ${cfg.stack}: NATS password of user ${NATS_USER}`, password.result);
  const hosts = Array.from({ length: NATS_NODES }, (_, i) => natsHost(i, namespaceName));
  const urlSecret = storedSecret(
    cfg,
    "nats-url",
    `Quire ${cfg.stack}: QUIRE_CLUSTER__NATS_URL`,
    password.result.apply((pw) => hosts.map((h) => `nats://${NATS_USER}:${pw}@${h}:${PORTS.natsClient}`).join(",")),
  );

  const fileSystem = new aws.efs.FileSystem("nats", {
    encrypted: true,
    performanceMode: "generalPurpose",
    throughputMode: "elastic",
    tags: { Name: `${clusterName}-jetstream` },
  });
  const mountTargets = net.privateSubnets.map(
    (s, i) => new aws.efs.MountTarget(`nats-${i + 1}`, { fileSystemId: fileSystem.id, subnetId: s.id, securityGroups: [sgs.efs.id] }),
  );
  const accessPoints = Array.from(
    { length: NATS_NODES },
    (_, i) =>
      new aws.efs.AccessPoint(`nats-${i + 1}`, {
        fileSystemId: fileSystem.id,
        posixUser: { uid: 1000, gid: 1000 },
        rootDirectory: { path: `/nats-${i + 1}`, creationInfo: { ownerUid: 1000, ownerGid: 1000, permissions: "0700" } },
        tags: { Name: `${clusterName}-${i + 1}` },
      }),
  );

  const logGroup = new aws.cloudwatch.LogGroup("nats", { name: `/quire/${cfg.stack}/nats`, retentionInDays: cfg.logRetentionDays });

  const taskRoleRes = taskRole(`nats-task`, `Quire ${cfg.stack}: NATS tasks (mount their EFS access point)`, [
    {
      Sid: "JetStreamStore",
      Effect: "Allow",
      Action: ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
      Resource: fileSystem.arn,
      Condition: { StringEquals: { "elasticfilesystem:AccessPointArn": accessPoints.map((ap) => ap.arn) } },
    },
  ]);
  const executionRole = taskRole(
    `nats-execution`,
    `Quire ${cfg.stack}: starts NATS tasks`,
    executionStatements({ logGroupArns: [logGroup.arn], secretArns: [passwordSecret.arn] }),
  );

  // Only the NATS tasks, through their access points and over TLS, may use the file system.
  new aws.efs.FileSystemPolicy("nats", {
    fileSystemId: fileSystem.id,
    policy: pulumi.jsonStringify({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "NatsTasksThroughAccessPoints",
          Effect: "Allow",
          Principal: { AWS: taskRoleRes.arn },
          Action: ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
          Resource: fileSystem.arn,
          Condition: { StringEquals: { "elasticfilesystem:AccessPointArn": accessPoints.map((ap) => ap.arn) } },
        },
        {
          Sid: "TlsOnly",
          Effect: "Deny",
          Principal: { AWS: "*" },
          Action: "*",
          Resource: fileSystem.arn,
          Condition: { Bool: { "aws:SecureTransport": "false" } },
        },
      ],
    }),
  });

  const services: aws.ecs.Service[] = [];
  for (let i = 0; i < NATS_NODES; i++) {
    const node = `nats-${i + 1}`;
    const discovery = new aws.servicediscovery.Service(node, {
      name: node,
      dnsConfig: {
        namespaceId: namespace.id,
        dnsRecords: [{ type: "A", ttl: 10 }],
        routingPolicy: "MULTIVALUE",
      },
    });
    const task = new aws.ecs.TaskDefinition(node, {
      family: `${name}-${node}`,
      requiresCompatibilities: ["FARGATE"],
      networkMode: "awsvpc",
      cpu: String(cfg.nats.cpu),
      memory: String(cfg.nats.memory),
      runtimePlatform: { operatingSystemFamily: "LINUX", cpuArchitecture: cfg.cpuArchitecture },
      executionRoleArn: executionRole.arn,
      taskRoleArn: taskRoleRes.arn,
      volumes: [
        {
          name: "jetstream",
          efsVolumeConfiguration: {
            fileSystemId: fileSystem.id,
            transitEncryption: "ENABLED",
            authorizationConfig: { accessPointId: accessPoints[i].id, iam: "ENABLED" },
          },
        },
      ],
      containerDefinitions: pulumi.jsonStringify([
        {
          name: "nats",
          image: cfg.nats.image,
          essential: true,
          // The configuration travels in the environment (it holds no secret: the password is a
          // variable the server reads from NATS_PASSWORD).
          entryPoint: ["/bin/sh", "-c"],
          command: ['printf "%s" "$NATS_CONFIG" > /tmp/nats.conf && exec nats-server --config /tmp/nats.conf'],
          environment: [{ name: "NATS_CONFIG", value: natsConfig(i, namespaceName, clusterName) }],
          secrets: [{ name: "NATS_PASSWORD", valueFrom: passwordSecret.arn }],
          portMappings: [
            { containerPort: PORTS.natsClient, protocol: "tcp" },
            { containerPort: PORTS.natsRoute, protocol: "tcp" },
          ],
          mountPoints: [{ sourceVolume: "jetstream", containerPath: STORE_MOUNT, readOnly: false }],
          healthCheck: {
            command: ["CMD-SHELL", "wget -q -O /dev/null 'http://127.0.0.1:8222/healthz?js-enabled-only=true' || exit 1"],
            interval: 10,
            timeout: 5,
            retries: 3,
            startPeriod: 60,
          },
          stopTimeout: 60, // lame duck mode: clients move to the other nodes first
          ulimits: [{ name: "nofile", softLimit: 65536, hardLimit: 65536 }],
          logConfiguration: {
            logDriver: "awslogs",
            options: { "awslogs-group": logGroup.name, "awslogs-region": cfg.region, "awslogs-stream-prefix": node },
          },
        },
      ]),
    });
    services.push(
      new aws.ecs.Service(
        node,
        {
          name: node,
          cluster: cluster.arn,
          taskDefinition: task.arn,
          launchType: "FARGATE",
          platformVersion: "1.4.0",
          desiredCount: 1,
          // One task per node and store: the old task stops before the new one starts, so two
          // servers never share a store directory.
          deploymentMinimumHealthyPercent: 0,
          deploymentMaximumPercent: 100,
          deploymentCircuitBreaker: { enable: true, rollback: true },
          networkConfiguration: {
            subnets: [net.privateSubnets[i % net.privateSubnets.length].id],
            securityGroups: [sgs.nats.id],
            assignPublicIp: false,
          },
          serviceRegistries: { registryArn: discovery.arn },
          enableEcsManagedTags: true,
          propagateTags: "SERVICE",
          waitForSteadyState: true,
        },
        // Roll the nodes one after another, never all three at once.
        { dependsOn: [...mountTargets, ...services.slice(-1)] },
      ),
    );
  }

  return {
    urlSecret,
    url: hosts.map((h) => `nats://${h}:${PORTS.natsClient}`).join(","),
    services,
    fileSystem,
    accessPoints,
    logGroup,
  };
}
