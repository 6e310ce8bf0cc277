// Quire on ECS Fargate: one image, two services. "api" nodes serve HTTP behind the internet-facing
// ALB (HTTPS only; HTTP redirects); "worker" nodes run the entity actors and projections. Both
// scale on CPU between the configured bounds.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { addresses } from "./cidr";
import type { ServiceSizing, StackConfig } from "./config";
import type { Database } from "./database";
import { executionStatements, taskRole } from "./iam";
import type { NatsCluster } from "./nats";
import type { Network } from "./network";
import { DATA_DIR, MODELS_DIR, QUIRE_PORT, type QuireNodeKind, type QuireSecretName, quireEnvironment } from "./quireEnv";
import type { AppSecrets } from "./secrets";
import type { SecurityGroups } from "./security";
import type { Storage } from "./storage";

export const TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06";
export const HEALTH_CHECK_PATH = "/status";
/** Quire's Prometheus endpoint (`[telemetry] prometheus`, on by default), on the API's port. */
export const METRICS_PATH = "/metrics";

export interface QuireServices {
  alb: aws.lb.LoadBalancer;
  certificate: aws.acm.Certificate;
  targetGroup: aws.lb.TargetGroup;
  httpsListener: aws.lb.Listener;
  httpListener: aws.lb.Listener;
  /** Answers 404 for METRICS_PATH on the HTTPS listener. */
  metricsRule: aws.lb.ListenerRule;
  services: Record<QuireNodeKind, aws.ecs.Service>;
  taskDefinitions: Record<QuireNodeKind, aws.ecs.TaskDefinition>;
  logGroups: Record<QuireNodeKind, aws.cloudwatch.LogGroup>;
  executionRole: aws.iam.Role;
  taskRole: aws.iam.Role;
}

export function createQuireServices(
  cfg: StackConfig,
  net: Network,
  sgs: SecurityGroups,
  cluster: aws.ecs.Cluster,
  storage: Storage,
  db: Database,
  nats: NatsCluster,
  appSecrets: AppSecrets,
): QuireServices {
  const name = `quire-${cfg.stack}`;

  // --- The load balancer: the only thing reachable from the internet. ---
  const alb = new aws.lb.LoadBalancer("alb", {
    name: `${name}-alb`,
    internal: false,
    loadBalancerType: "application",
    subnets: net.publicSubnets.map((s) => s.id),
    securityGroups: [sgs.alb.id],
    dropInvalidHeaderFields: true,
    idleTimeout: 60,
    enableDeletionProtection: cfg.deletionProtection,
  });

  const certificate = new aws.acm.Certificate("api", {
    domainName: cfg.domain,
    validationMethod: "DNS",
    keyAlgorithm: "EC_prime256v1",
  });
  let validationRecordFqdns: pulumi.Input<string>[] | undefined;
  if (cfg.hostedZoneId !== undefined) {
    const option = certificate.domainValidationOptions.apply((o) => o[0]);
    const record = new aws.route53.Record("api-cert-validation", {
      zoneId: cfg.hostedZoneId,
      name: option.apply((o) => o.resourceRecordName!),
      type: option.apply((o) => o.resourceRecordType!),
      records: [option.apply((o) => o.resourceRecordValue!)],
      ttl: 300,
      allowOverwrite: true,
    });
    validationRecordFqdns = [record.fqdn];
    new aws.route53.Record("api-alias", {
      zoneId: cfg.hostedZoneId,
      name: cfg.domain,
      type: "A",
      aliases: [{ name: alb.dnsName, zoneId: alb.zoneId, evaluateTargetHealth: true }],
    });
  }
  // Waits until the certificate is issued (without a hosted zone, until someone has created the
  // validation record that `certificateValidation` shows).
  const validation = new aws.acm.CertificateValidation("api", {
    certificateArn: certificate.arn,
    validationRecordFqdns,
  });

  const targetGroup = new aws.lb.TargetGroup("api", {
    name: `${name}-api`,
    port: QUIRE_PORT,
    protocol: "HTTP",
    targetType: "ip",
    vpcId: net.vpc.id,
    deregistrationDelay: 30,
    healthCheck: {
      enabled: true,
      path: HEALTH_CHECK_PATH,
      protocol: "HTTP",
      port: "traffic-port",
      matcher: "200",
      interval: 15,
      timeout: 5,
      healthyThreshold: 2,
      unhealthyThreshold: 3,
    },
  });

  const httpsListener = new aws.lb.Listener("https", {
    loadBalancerArn: alb.arn,
    port: 443,
    protocol: "HTTPS",
    sslPolicy: TLS_POLICY,
    certificateArn: validation.certificateArn,
    defaultActions: [{ type: "forward", targetGroupArn: targetGroup.arn }],
  });
  // Quire serves its metrics on the API's port, where everything else is forwarded: keep them
  // from the internet. The body is Quire's own 404 (as a problem, in the content types the ALB
  // can send). Path patterns are case-sensitive, as Quire's routes are.
  const metricsRule = new aws.lb.ListenerRule("https-metrics", {
    listenerArn: httpsListener.arn,
    priority: 1,
    conditions: [{ pathPattern: { values: [METRICS_PATH, `${METRICS_PATH}/*`] } }],
    actions: [
      {
        type: "fixed-response",
        fixedResponse: {
          statusCode: "404",
          contentType: "application/json",
          messageBody: JSON.stringify({ type: "/problems/not-found", title: "Not Found", status: 404, detail: "no such endpoint", code: "not_found" }),
        },
      },
    ],
  });
  const httpListener = new aws.lb.Listener("http", {
    loadBalancerArn: alb.arn,
    port: 80,
    protocol: "HTTP",
    defaultActions: [{ type: "redirect", redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" } }],
  });

  // --- Logs and roles. ---
  const logGroups: Record<QuireNodeKind, aws.cloudwatch.LogGroup> = {
    api: new aws.cloudwatch.LogGroup("api", { name: `/quire/${cfg.stack}/api`, retentionInDays: cfg.logRetentionDays }),
    worker: new aws.cloudwatch.LogGroup("worker", { name: `/quire/${cfg.stack}/worker`, retentionInDays: cfg.logRetentionDays }),
  };

  const secretArns: Record<QuireSecretName, pulumi.Output<string>> = {
    QUIRE_DATABASE_URL: db.urlSecret.arn,
    QUIRE_ADMIN_PASSWORD: appSecrets.adminPassword.arn,
    QUIRE_API__TOKEN_SECRET: appSecrets.tokenSecret.arn,
    QUIRE_CLUSTER__NATS_URL: nats.urlSecret.arn,
  };
  const executionRole = taskRole(
    "quire-execution",
    `Quire ${cfg.stack}: starts Quire tasks (image, logs, their secrets)`,
    executionStatements({
      repositoryArn: storage.repository.arn,
      logGroupArns: [logGroups.api.arn, logGroups.worker.arn],
      secretArns: Object.values(secretArns),
    }),
  );
  // What Quire itself may do: read and write the stack's bucket, nothing else.
  const quireTaskRole = taskRole("quire-task", `Quire ${cfg.stack}: Quire tasks (the data bucket)`, [
    { Sid: "ListBucket", Effect: "Allow", Action: ["s3:ListBucket", "s3:GetBucketLocation"], Resource: storage.bucket.arn },
    {
      Sid: "Objects",
      Effect: "Allow",
      Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
      Resource: pulumi.interpolate`${storage.bucket.arn}/*`,
    },
    {
      Sid: "BucketKey",
      Effect: "Allow",
      Action: ["kms:Decrypt", "kms:GenerateDataKey"],
      Resource: storage.key.arn,
      Condition: { StringEquals: { "kms:ViaService": `s3.${cfg.region}.amazonaws.com` } },
    },
  ]);

  // --- Task definitions. ---
  const trustedProxies = net.publicCidrs.flatMap(addresses);
  const image = pulumi.interpolate`${storage.repository.repositoryUrl}:${cfg.imageTag}`;
  const modelFile = cfg.summaryModelKey?.split("/").pop();
  const telemetry = cfg.telemetry && {
    otlpEndpoint: cfg.telemetry.otlpEndpoint,
    serviceName: name,
    traceSampling: cfg.telemetry.traceSampling,
  };

  const secretEntries = pulumi.all(
    Object.entries(secretArns).map(([secretName, arn]) => arn.apply((valueFrom) => ({ name: secretName, valueFrom }))),
  );

  const taskDefinition = (kind: QuireNodeKind, size: ServiceSizing) => {
    const containerDefinitions = pulumi
      .all([storage.bucket.bucket, image, logGroups[kind].name, secretEntries])
      .apply(([bucket, img, logGroup, secrets]) => {
        const logs = (prefix: string) => ({
          logDriver: "awslogs",
          options: { "awslogs-group": logGroup, "awslogs-region": cfg.region, "awslogs-stream-prefix": prefix },
        });
        const defs: Record<string, unknown>[] = [
          {
            name: "quire",
            image: img,
            essential: true,
            // The image's entrypoint is the `quire` binary.
            command: ["serve"],
            environment: quireEnvironment({
              kind,
              bucket,
              region: cfg.region,
              adminUser: cfg.adminUser,
              trustedProxies,
              modelFile,
              telemetry,
            }),
            secrets,
            portMappings: kind === "api" ? [{ containerPort: QUIRE_PORT, protocol: "tcp" }] : [],
            readonlyRootFilesystem: true,
            mountPoints: [
              { sourceVolume: "data", containerPath: DATA_DIR, readOnly: false },
              { sourceVolume: "tmp", containerPath: "/tmp", readOnly: false },
              ...(modelFile ? [{ sourceVolume: "models", containerPath: MODELS_DIR, readOnly: true }] : []),
            ],
            ulimits: [{ name: "nofile", softLimit: 65536, hardLimit: 65536 }],
            stopTimeout: 30, // Quire drains in shutdown_timeout_secs (10 s)
            linuxParameters: { initProcessEnabled: true },
            logConfiguration: logs(kind),
            ...(modelFile ? { dependsOn: [{ containerName: "fetch-model", condition: "SUCCESS" }] } : {}),
          },
        ];
        if (modelFile) {
          // Quire reads a GGUF model from a local path: copy it out of the bucket first.
          defs.push({
            name: "fetch-model",
            image: cfg.modelFetchImage,
            essential: false,
            command: ["s3", "cp", "--only-show-errors", `s3://${bucket}/models/${cfg.summaryModelKey}`, `${MODELS_DIR}/${modelFile}`],
            mountPoints: [{ sourceVolume: "models", containerPath: MODELS_DIR, readOnly: false }],
            logConfiguration: logs(`${kind}-fetch-model`),
          });
        }
        return JSON.stringify(defs);
      });

    return new aws.ecs.TaskDefinition(kind, {
      family: `${name}-${kind}`,
      requiresCompatibilities: ["FARGATE"],
      networkMode: "awsvpc",
      cpu: String(size.cpu),
      memory: String(size.memory),
      runtimePlatform: { operatingSystemFamily: "LINUX", cpuArchitecture: cfg.cpuArchitecture },
      executionRoleArn: executionRole.arn,
      taskRoleArn: quireTaskRole.arn,
      // Task storage: the data directory (search index, caches) and /tmp; the root file system
      // is read-only.
      volumes: [{ name: "data" }, { name: "tmp" }, ...(modelFile ? [{ name: "models" }] : [])],
      containerDefinitions,
    });
  };

  const taskDefinitions: Record<QuireNodeKind, aws.ecs.TaskDefinition> = {
    api: taskDefinition("api", cfg.api),
    worker: taskDefinition("worker", cfg.worker),
  };

  // --- Services and their autoscaling. ---
  const service = (kind: QuireNodeKind, size: ServiceSizing) =>
    new aws.ecs.Service(
      kind,
      {
        name: kind,
        cluster: cluster.arn,
        taskDefinition: taskDefinitions[kind].arn,
        launchType: "FARGATE",
        platformVersion: "1.4.0",
        desiredCount: size.desiredCount,
        deploymentMinimumHealthyPercent: 100,
        deploymentMaximumPercent: 200,
        deploymentCircuitBreaker: { enable: true, rollback: true },
        networkConfiguration: {
          subnets: net.privateSubnets.map((s) => s.id),
          securityGroups: [sgs.quire.id],
          assignPublicIp: false,
        },
        ...(kind === "api"
          ? {
              loadBalancers: [{ targetGroupArn: targetGroup.arn, containerName: "quire", containerPort: QUIRE_PORT }],
              // The first node migrates the schema before it answers /status.
              healthCheckGracePeriodSeconds: 120,
            }
          : {}),
        enableEcsManagedTags: true,
        propagateTags: "SERVICE",
        enableExecuteCommand: false,
      },
      {
        // Autoscaling owns the running count once the service exists.
        ignoreChanges: ["desiredCount"],
        dependsOn: kind === "api" ? [httpsListener, ...nats.services] : nats.services,
      },
    );

  const services: Record<QuireNodeKind, aws.ecs.Service> = {
    api: service("api", cfg.api),
    worker: service("worker", cfg.worker),
  };

  for (const kind of ["api", "worker"] as QuireNodeKind[]) {
    const size = cfg[kind];
    const target = new aws.appautoscaling.Target(kind, {
      serviceNamespace: "ecs",
      scalableDimension: "ecs:service:DesiredCount",
      resourceId: pulumi.interpolate`service/${cluster.name}/${services[kind].name}`,
      minCapacity: size.minCapacity,
      maxCapacity: size.maxCapacity,
    });
    new aws.appautoscaling.Policy(`${kind}-cpu`, {
      name: `${name}-${kind}-cpu`,
      policyType: "TargetTrackingScaling",
      serviceNamespace: target.serviceNamespace,
      scalableDimension: target.scalableDimension,
      resourceId: target.resourceId,
      targetTrackingScalingPolicyConfiguration: {
        targetValue: cfg.cpuTargetPercent,
        predefinedMetricSpecification: { predefinedMetricType: "ECSServiceAverageCPUUtilization" },
        scaleOutCooldown: 60,
        scaleInCooldown: 300,
      },
    });
  }

  return {
    alb,
    certificate,
    targetGroup,
    httpsListener,
    httpListener,
    metricsRule,
    services,
    taskDefinitions,
    logGroups,
    executionRole,
    taskRole: quireTaskRole,
  };
}
