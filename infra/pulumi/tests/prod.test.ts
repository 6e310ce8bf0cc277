// The prod stack, built through the real entry point (index.ts, reading Pulumi.prod.yaml) under
// Pulumi's mocks. Every assertion reads the inputs the program would send to AWS.

import * as assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import * as pulumi from "@pulumi/pulumi";

import { contains } from "../src/cidr";
import { containersOf, Harness, policyOf, type Recorded, stackConfigValues } from "./harness";
import { readStructs, unknownSetting } from "./settings";

const T = {
  vpc: "aws:ec2/vpc:Vpc",
  subnet: "aws:ec2/subnet:Subnet",
  route: "aws:ec2/route:Route",
  nat: "aws:ec2/natGateway:NatGateway",
  sg: "aws:ec2/securityGroup:SecurityGroup",
  defaultSg: "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
  ingress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  egress: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
  legacyRule: "aws:ec2/securityGroupRule:SecurityGroupRule",
  db: "aws:rds/instance:Instance",
  dbSubnets: "aws:rds/subnetGroup:SubnetGroup",
  dbParams: "aws:rds/parameterGroup:ParameterGroup",
  lb: "aws:lb/loadBalancer:LoadBalancer",
  listener: "aws:lb/listener:Listener",
  listenerRule: "aws:lb/listenerRule:ListenerRule",
  targetGroup: "aws:lb/targetGroup:TargetGroup",
  cert: "aws:acm/certificate:Certificate",
  certValidation: "aws:acm/certificateValidation:CertificateValidation",
  service: "aws:ecs/service:Service",
  taskDef: "aws:ecs/taskDefinition:TaskDefinition",
  scalingTarget: "aws:appautoscaling/target:Target",
  scalingPolicy: "aws:appautoscaling/policy:Policy",
  logGroup: "aws:cloudwatch/logGroup:LogGroup",
  secret: "aws:secretsmanager/secret:Secret",
  secretVersion: "aws:secretsmanager/secretVersion:SecretVersion",
  password: "random:index/randomPassword:RandomPassword",
  bucket: "aws:s3/bucket:Bucket",
  bucketSse: "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
  bucketVersioning: "aws:s3/bucketVersioning:BucketVersioning",
  bucketPab: "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
  bucketPolicy: "aws:s3/bucketPolicy:BucketPolicy",
  role: "aws:iam/role:Role",
  rolePolicy: "aws:iam/rolePolicy:RolePolicy",
  efs: "aws:efs/fileSystem:FileSystem",
  efsPolicy: "aws:efs/fileSystemPolicy:FileSystemPolicy",
  accessPoint: "aws:efs/accessPoint:AccessPoint",
  ecr: "aws:ecr/repository:Repository",
};

const h = new Harness();
const config = stackConfigValues("prod");
let program: Record<string, any>;

const outputValue = <V>(o: pulumi.Output<V>) => new Promise<V>((resolve) => o.apply(resolve));
const sg = (key: string) => h.one(T.sg, `${key}-sg`);
const ingressOf = (group: Recorded) => h.ofType(T.ingress).filter((r) => r.inputs.securityGroupId === group.id);
const egressOf = (group: Recorded) => h.ofType(T.egress).filter((r) => r.inputs.securityGroupId === group.id);
const subnetsOfTier = (tier: string) => h.ofType(T.subnet).filter((s) => s.inputs.tags.tier === tier);
const policyOfRole = (role: Recorded) => policyOf(h.ofType(T.rolePolicy).find((p) => p.inputs.role === role.id)!);
const roleByArn = (arn: string) => h.ofType(T.role).find((r) => r.state.arn === arn)!;
const quireContainer = (kind: string) => containersOf(h.one(T.taskDef, kind)).find((c) => c.name === "quire");
const asList = <V>(v: V | V[]) => (Array.isArray(v) ? v : [v]);

before(async () => {
  pulumi.runtime.setAllConfig(config);
  await h.install("prod");
  program = await import("../index");
  await h.settle();
});

describe("network", () => {
  test("a VPC over two AZs: a public and a private subnet in each", () => {
    const vpc = h.ofType(T.vpc);
    assert.equal(vpc.length, 1);
    const pub = subnetsOfTier("public");
    const priv = subnetsOfTier("private");
    assert.equal(pub.length, 2);
    assert.equal(priv.length, 2);
    assert.deepEqual(new Set(pub.map((s) => s.inputs.availabilityZone)), new Set(["eu-west-1a", "eu-west-1b"]));
    assert.deepEqual(new Set(priv.map((s) => s.inputs.availabilityZone)), new Set(["eu-west-1a", "eu-west-1b"]));
    for (const s of [...pub, ...priv]) {
      assert.equal(s.inputs.vpcId, vpc[0].id);
      assert.ok(contains(vpc[0].inputs.cidrBlock, s.inputs.cidrBlock.split("/")[0]), `${s.name} inside the VPC`);
    }
  });

  test("no subnet hands out public IPs", () => {
    for (const s of h.ofType(T.subnet)) assert.equal(s.inputs.mapPublicIpOnLaunch, false, s.name);
  });

  test("NAT gateways sit in public subnets; private subnets route out through them, public ones through the IGW", () => {
    const pubIds = subnetsOfTier("public").map((s) => s.id);
    const nats = h.ofType(T.nat);
    assert.equal(nats.length, 2, "prod: one NAT gateway per AZ");
    for (const n of nats) assert.ok(pubIds.includes(n.inputs.subnetId), `${n.name} in a public subnet`);
    const defaults = h.ofType(T.route).filter((r) => r.inputs.destinationCidrBlock === "0.0.0.0/0");
    assert.equal(defaults.filter((r) => r.inputs.gatewayId !== undefined).length, 1);
    assert.equal(defaults.filter((r) => r.inputs.natGatewayId !== undefined).length, 2);
  });

  test("the default security group is emptied", () => {
    const d = h.ofType(T.defaultSg);
    assert.equal(d.length, 1);
    assert.deepEqual(d[0].inputs.ingress ?? [], []);
    assert.deepEqual(d[0].inputs.egress ?? [], []);
  });
});

describe("nothing public but the ALB", () => {
  test("rules are separate resources: no inline or legacy rules to slip past these tests", () => {
    for (const g of h.ofType(T.sg)) {
      assert.deepEqual(g.inputs.ingress ?? [], [], `${g.name} inline ingress`);
      assert.deepEqual(g.inputs.egress ?? [], [], `${g.name} inline egress`);
    }
    assert.equal(h.ofType(T.legacyRule).length, 0);
  });

  test("only the ALB's security group admits anything from the internet, on 80 and 443", () => {
    const alb = sg("alb");
    const open = h.ofType(T.ingress).filter((r) => r.inputs.cidrIpv4 !== undefined || r.inputs.cidrIpv6 !== undefined || r.inputs.prefixListId !== undefined);
    assert.ok(open.length > 0, "the ALB admits the internet");
    for (const r of open) {
      assert.equal(r.inputs.securityGroupId, alb.id, `${r.name} opens a CIDR on a group other than the ALB's`);
    }
    assert.deepEqual(
      ingressOf(alb).map((r) => [r.inputs.cidrIpv4, r.inputs.ipProtocol, r.inputs.fromPort, r.inputs.toPort]).sort(),
      [
        ["0.0.0.0/0", "tcp", 443, 443],
        ["0.0.0.0/0", "tcp", 80, 80],
      ],
    );
  });

  test("the ALB is the only load balancer, internet-facing, in the public subnets", () => {
    const lbs = h.ofType(T.lb);
    assert.equal(lbs.length, 1);
    const alb = lbs[0];
    assert.equal(alb.inputs.internal, false);
    assert.equal(alb.inputs.loadBalancerType, "application");
    assert.deepEqual(new Set(alb.inputs.subnets), new Set(subnetsOfTier("public").map((s) => s.id)));
    assert.deepEqual(alb.inputs.securityGroups, [sg("alb").id]);
    assert.equal(alb.inputs.dropInvalidHeaderFields, true);
  });

  test("no resource asks for a public address or public access", () => {
    const flagged: string[] = [];
    const walk = (where: string, v: unknown) => {
      if (Array.isArray(v)) v.forEach((x, i) => walk(`${where}[${i}]`, x));
      else if (v && typeof v === "object") {
        for (const [k, x] of Object.entries(v)) {
          if (["publiclyAccessible", "assignPublicIp", "associatePublicIpAddress", "mapPublicIpOnLaunch"].includes(k) && x !== false) flagged.push(`${where}.${k}=${x}`);
          walk(`${where}.${k}`, x);
        }
      }
    };
    for (const r of h.resources) walk(`${r.type}:${r.name}`, r.inputs);
    assert.deepEqual(flagged, []);
  });

  test("every ECS service runs in private subnets without a public IP", () => {
    const priv = subnetsOfTier("private").map((s) => s.id);
    const services = h.ofType(T.service);
    assert.equal(services.length, 5, "api, worker and three NATS nodes");
    for (const s of services) {
      assert.equal(s.inputs.networkConfiguration.assignPublicIp, false, s.name);
      for (const subnet of s.inputs.networkConfiguration.subnets) assert.ok(priv.includes(subnet), `${s.name} in ${subnet}`);
      assert.equal(s.inputs.launchType, "FARGATE");
    }
  });
});

describe("who may reach whom", () => {
  test("Quire's tasks accept 8080 from the ALB's group only", () => {
    const rules = ingressOf(sg("quire"));
    assert.deepEqual(
      rules.map((r) => [r.inputs.referencedSecurityGroupId, r.inputs.fromPort, r.inputs.toPort, r.inputs.cidrIpv4]),
      [[sg("alb").id, 8080, 8080, undefined]],
    );
    // and the ALB may only send to Quire's port
    assert.deepEqual(
      egressOf(sg("alb")).map((r) => [r.inputs.referencedSecurityGroupId, r.inputs.fromPort, r.inputs.toPort]),
      [[sg("quire").id, 8080, 8080]],
    );
  });

  test("PostgreSQL accepts 5432 from Quire's group only (a source group, no CIDR)", () => {
    const rules = ingressOf(sg("db"));
    assert.equal(rules.length, 1);
    const [r] = rules;
    assert.equal(r.inputs.referencedSecurityGroupId, sg("quire").id);
    assert.equal(r.inputs.cidrIpv4, undefined);
    assert.equal(r.inputs.cidrIpv6, undefined);
    assert.equal(r.inputs.ipProtocol, "tcp");
    assert.equal(r.inputs.fromPort, 5432);
    assert.equal(r.inputs.toPort, 5432);
    assert.deepEqual(h.one(T.db, "db").inputs.vpcSecurityGroupIds, [sg("db").id]);
    assert.equal(egressOf(sg("db")).length, 0);
  });

  test("NATS: 4222 only from Quire, 6222 only between NATS nodes; EFS only from NATS", () => {
    const nats = sg("nats");
    assert.deepEqual(
      ingressOf(nats)
        .map((r) => [r.inputs.fromPort, r.inputs.toPort, r.inputs.referencedSecurityGroupId, r.inputs.cidrIpv4])
        .sort(),
      [
        [4222, 4222, sg("quire").id, undefined],
        [6222, 6222, nats.id, undefined],
      ],
    );
    assert.deepEqual(
      ingressOf(sg("efs")).map((r) => [r.inputs.fromPort, r.inputs.referencedSecurityGroupId]),
      [[2049, nats.id]],
    );
    for (const s of h.ofType(T.service).filter((s) => s.name.startsWith("nats-"))) {
      assert.deepEqual(s.inputs.networkConfiguration.securityGroups, [nats.id]);
    }
    for (const kind of ["api", "worker"]) {
      assert.deepEqual(h.one(T.service, kind).inputs.networkConfiguration.securityGroups, [sg("quire").id]);
    }
  });
});

describe("database", () => {
  test("RDS PostgreSQL 16: Multi-AZ, encrypted, private, backed up, protected", () => {
    const db = h.one(T.db, "db");
    assert.equal(db.inputs.engine, "postgres");
    assert.match(db.inputs.engineVersion, /^16(\.|$)/);
    assert.equal(db.inputs.multiAz, true);
    assert.equal(db.inputs.storageEncrypted, true);
    assert.equal(db.inputs.publiclyAccessible, false);
    assert.ok(db.inputs.backupRetentionPeriod >= 7, `backups kept ${db.inputs.backupRetentionPeriod} days`);
    assert.equal(db.inputs.backupRetentionPeriod, Number(config["quire:dbBackupRetentionDays"]));
    assert.equal(db.inputs.deletionProtection, true, "prod: deletion protection on");
    assert.equal(db.inputs.skipFinalSnapshot, false);
    assert.equal(db.inputs.instanceClass, config["quire:dbInstanceClass"]);
  });

  test("in a subnet group of the private subnets only", () => {
    const group = h.one(T.dbSubnets, "db");
    assert.deepEqual(new Set(group.inputs.subnetIds), new Set(subnetsOfTier("private").map((s) => s.id)));
    assert.equal(h.one(T.db, "db").inputs.dbSubnetGroupName, group.state.name);
  });

  test("TLS is required by the server and by the URL Quire gets", () => {
    const params = h.one(T.dbParams, "db");
    assert.equal(params.inputs.family, "postgres16");
    assert.ok(params.inputs.parameters.some((p: any) => p.name === "rds.force_ssl" && p.value === "1"), "rds.force_ssl = 1");
    const url = h.one(T.secretVersion, "database-url").inputs.secretString;
    const db = h.one(T.db, "db");
    assert.match(url, /^postgres:\/\/quire:[A-Za-z0-9]{40}@[^/]+:5432\/quire\?sslmode=require$/);
    assert.ok(url.includes(`@${db.state.address}:`), "the URL names the instance");
    assert.ok(url.includes(`:${db.inputs.password}@`), "the URL carries the instance's password");
  });
});

describe("HTTPS", () => {
  test("the HTTPS listener uses a TLS 1.3 policy and the validated certificate", () => {
    const https = h.one(T.listener, "https");
    assert.equal(https.inputs.port, 443);
    assert.equal(https.inputs.protocol, "HTTPS");
    assert.equal(https.inputs.sslPolicy, "ELBSecurityPolicy-TLS13-1-2-2021-06");
    const cert = h.one(T.cert, "api");
    assert.equal(cert.inputs.domainName, config["quire:domain"]);
    assert.equal(cert.inputs.validationMethod, "DNS");
    assert.equal(h.one(T.certValidation, "api").inputs.certificateArn, cert.state.arn);
    assert.equal(https.inputs.certificateArn, cert.state.arn);
    assert.deepEqual(https.inputs.defaultActions.map((a: any) => [a.type, a.targetGroupArn]), [["forward", h.one(T.targetGroup, "api").state.arn]]);
  });

  test("HTTP on 80 only redirects to HTTPS on 443", () => {
    const http = h.one(T.listener, "http");
    assert.equal(http.inputs.port, 80);
    assert.equal(http.inputs.protocol, "HTTP");
    assert.equal(http.inputs.defaultActions.length, 1);
    const [action] = http.inputs.defaultActions;
    assert.equal(action.type, "redirect");
    assert.equal(action.redirect.protocol, "HTTPS");
    assert.equal(action.redirect.port, "443");
    assert.equal(action.redirect.statusCode, "HTTP_301");
    assert.equal(h.ofType(T.listener).length, 2);
    assert.ok(!h.ofType(T.listenerRule).some((r) => r.inputs.listenerArn === h.one(T.listener, "http").state.arn), "no rule on the HTTP listener");
  });

  test("the ALB answers 404 for /metrics itself: Quire's metrics are not served to the internet", () => {
    const rules = h.ofType(T.listenerRule);
    assert.equal(rules.length, 1, "one listener rule");
    const [rule] = rules;
    assert.equal(rule.inputs.listenerArn, h.one(T.listener, "https").state.arn);
    // the only rule, so nothing is evaluated before it
    assert.equal(rule.inputs.priority, 1);
    assert.deepEqual(rule.inputs.conditions, [{ pathPattern: { values: ["/metrics", "/metrics/*"] } }]);
    assert.equal(rule.inputs.actions.length, 1);
    const [action] = rule.inputs.actions;
    assert.equal(action.type, "fixed-response");
    assert.equal(action.targetGroupArn, undefined);
    assert.equal(action.fixedResponse.statusCode, "404");
    assert.equal(action.fixedResponse.contentType, "application/json");
    assert.equal(JSON.parse(action.fixedResponse.messageBody).code, "not_found");
    // Quire still serves it (the default), for scrapers inside the VPC
    for (const kind of ["api", "worker"]) {
      const names = quireContainer(kind).environment.map((e: any) => e.name);
      assert.ok(!names.includes("QUIRE_TELEMETRY__PROMETHEUS"), `${kind}: Prometheus left at its default`);
    }
  });

  test("the target group checks GET /status on Quire's port, and only api tasks are behind it", () => {
    const tg = h.one(T.targetGroup, "api");
    assert.equal(tg.inputs.port, 8080);
    assert.equal(tg.inputs.targetType, "ip");
    assert.equal(tg.inputs.healthCheck.path, "/status");
    assert.equal(tg.inputs.healthCheck.matcher, "200");
    assert.deepEqual(h.one(T.service, "api").inputs.loadBalancers, [{ targetGroupArn: tg.state.arn, containerName: "quire", containerPort: 8080 }]);
    assert.equal(h.one(T.service, "worker").inputs.loadBalancers, undefined);
  });
});

describe("Quire's tasks", () => {
  test("api nodes: role api, listening on 0.0.0.0:8080; workers: actors and projections", () => {
    const env = (kind: string) => Object.fromEntries(quireContainer(kind).environment.map((e: any) => [e.name, e.value]));
    assert.equal(env("api").QUIRE_CLUSTER__ROLES, "api");
    assert.equal(env("api").QUIRE_LISTEN, "0.0.0.0:8080");
    assert.equal(env("worker").QUIRE_CLUSTER__ROLES, "actors,projections");
    assert.equal(env("worker").QUIRE_LISTEN, undefined);
    for (const kind of ["api", "worker"]) {
      assert.equal(env(kind).QUIRE_CLUSTER__REPLICAS, "3");
      assert.equal(env(kind).QUIRE_TEXTS__URL, `s3://${h.one(T.bucket, "data").state.bucket}/texts`);
    }
    assert.deepEqual(quireContainer("api").portMappings, [{ containerPort: 8080, protocol: "tcp" }]);
  });

  test("the ALB's addresses are Quire's trusted proxies: every address of the public subnets, nothing else", () => {
    const env = Object.fromEntries(quireContainer("api").environment.map((e: any) => [e.name, e.value]));
    const proxies: string[] = JSON.parse(env.QUIRE_API__TRUSTED_PROXIES);
    const pub = subnetsOfTier("public").map((s) => s.inputs.cidrBlock);
    const priv = subnetsOfTier("private").map((s) => s.inputs.cidrBlock);
    assert.equal(proxies.length, 128);
    for (const ip of proxies) {
      assert.ok(pub.some((c) => contains(c, ip)), `${ip} in a public subnet`);
      assert.ok(!priv.some((c) => contains(c, ip)), `${ip} in a private subnet`);
    }
  });

  test("without otlpEndpoint: no telemetry is exported, and Quire's tasks get no port for it", () => {
    for (const kind of ["api", "worker"]) {
      const names = quireContainer(kind).environment.map((e: any) => e.name);
      assert.deepEqual(names.filter((n: string) => n.startsWith("QUIRE_TELEMETRY__")), [], kind);
    }
    assert.deepEqual(
      egressOf(sg("quire")).map((r) => r.inputs.fromPort).sort((a, b) => a - b),
      [443, 4222, 5432],
    );
  });

  test("every QUIRE_ variable names a setting in src/config.rs", (t) => {
    const structs = readStructs();
    if (!structs) return t.skip("src/config.rs not found beside infra/pulumi");
    // the check itself can fail
    assert.ok(unknownSetting(structs, "QUIRE_CLUSTER__NATS_URLS"), "a misspelt key is caught");
    assert.ok(unknownSetting(structs, "QUIRE_CLUSTER"), "a table is not a value");
    assert.equal(unknownSetting(structs, "QUIRE_API__TOKEN_SECRET"), undefined);
    // the telemetry settings a stack with otlpEndpoint sets (tests/dev.test.ts builds one)
    for (const n of ["QUIRE_TELEMETRY__OTLP_ENDPOINT", "QUIRE_TELEMETRY__SERVICE_NAME", "QUIRE_TELEMETRY__SAMPLING_RATIO"]) {
      assert.equal(unknownSetting(structs, n), undefined, n);
    }
    assert.ok(unknownSetting(structs, "QUIRE_TELEMETRY__SAMPLING"), "a misspelt telemetry key is caught");
    const names = new Set<string>();
    for (const kind of ["api", "worker"]) {
      const c = quireContainer(kind);
      for (const e of [...c.environment, ...c.secrets]) if (e.name.startsWith("QUIRE_")) names.add(e.name);
    }
    assert.ok(names.size >= 10, `only ${names.size} QUIRE_ variables`);
    assert.deepEqual([...names].map((n) => unknownSetting(structs, n)).filter(Boolean), []);
  });

  test("they run the configured image tag from the stack's ECR repository, read-only root", () => {
    const repo = h.one(T.ecr, "quire");
    for (const kind of ["api", "worker"]) {
      const c = quireContainer(kind);
      assert.equal(c.image, `${repo.state.repositoryUrl}:${config["quire:imageTag"]}`);
      assert.equal(c.readonlyRootFilesystem, true);
      const td = h.one(T.taskDef, kind);
      assert.deepEqual(td.inputs.requiresCompatibilities, ["FARGATE"]);
      assert.equal(td.inputs.networkMode, "awsvpc");
    }
  });

  test("ECR: immutable tags, scanned on push", () => {
    const repo = h.one(T.ecr, "quire");
    assert.equal(repo.inputs.imageTagMutability, "IMMUTABLE");
    assert.equal(repo.inputs.imageScanningConfiguration.scanOnPush, true);
  });

  test("a log group per service, with retention", () => {
    for (const kind of ["api", "worker", "nats"]) {
      const g = h.one(T.logGroup, kind);
      assert.equal(g.inputs.retentionInDays, Number(config["quire:logRetentionDays"]));
    }
    for (const kind of ["api", "worker"]) {
      const logs = quireContainer(kind).logConfiguration;
      assert.equal(logs.logDriver, "awslogs");
      assert.equal(logs.options["awslogs-group"], h.one(T.logGroup, kind).state.name);
    }
  });
});

describe("secrets", () => {
  const secretArn = (key: string) => h.one(T.secret, key).state.arn;
  const expected = {
    QUIRE_DATABASE_URL: "database-url",
    QUIRE_ADMIN_PASSWORD: "admin-password",
    QUIRE_API__TOKEN_SECRET: "token-secret",
    QUIRE_CLUSTER__NATS_URL: "nats-url",
  };

  test("delivered as `secrets` (valueFrom the secret's ARN), never as environment", () => {
    const generated = h.ofType(T.password).map((p) => p.state.result as string);
    assert.equal(generated.length, 4, "db, admin, token and NATS passwords");
    for (const kind of ["api", "worker"]) {
      const c = quireContainer(kind);
      assert.deepEqual(
        Object.fromEntries(c.secrets.map((s: any) => [s.name, s.valueFrom])),
        Object.fromEntries(Object.entries(expected).map(([n, key]) => [n, secretArn(key)])),
      );
      const envNames = c.environment.map((e: any) => e.name);
      for (const n of Object.keys(expected)) assert.ok(!envNames.includes(n), `${n} in environment`);
    }
    // and no generated value appears in any task definition's plain text (NATS's included)
    const taskDefinitions = h.ofType(T.taskDef);
    assert.equal(taskDefinitions.length, 5);
    for (const td of taskDefinitions) {
      const plain = JSON.stringify(td.inputs);
      for (const value of generated) assert.ok(!plain.includes(value), `${td.name}: a secret value in plain text`);
    }
  });

  test("generated: the token secret has at least 32 characters", () => {
    assert.ok(h.one(T.password, "token-secret").inputs.length >= 32, "token secret length");
    assert.ok(h.one(T.secretVersion, "token-secret").inputs.secretString.length >= 32, "stored token secret length");
    assert.equal(h.one(T.secretVersion, "admin-password").inputs.secretString, h.one(T.password, "admin-password").state.result);
  });

  test("the execution role reads exactly those secrets", () => {
    const td = h.one(T.taskDef, "api");
    assert.equal(h.one(T.taskDef, "worker").inputs.executionRoleArn, td.inputs.executionRoleArn);
    const policy = policyOfRole(roleByArn(td.inputs.executionRoleArn));
    const grants = policy.Statement.filter((s) => asList(s.Action).some((a: string) => a.startsWith("secretsmanager:")));
    assert.equal(grants.length, 1);
    assert.deepEqual(asList(grants[0].Action), ["secretsmanager:GetSecretValue"]);
    assert.deepEqual(new Set(asList(grants[0].Resource)), new Set(Object.values(expected).map(secretArn)));
    // NATS's execution role reads the NATS password alone
    const natsPolicy = policyOfRole(roleByArn(h.one(T.taskDef, "nats-1").inputs.executionRoleArn));
    const natsGrants = natsPolicy.Statement.filter((s) => asList(s.Action).some((a: string) => a.startsWith("secretsmanager:")));
    assert.deepEqual(natsGrants.flatMap((s) => asList(s.Resource)), [secretArn("nats-password")]);
    // no wildcard anywhere in Quire's execution role but ECR's token
    for (const s of policy.Statement) if (asList(s.Resource).includes("*")) assert.deepEqual(asList(s.Action), ["ecr:GetAuthorizationToken"]);
  });
});

describe("storage", () => {
  test("the bucket: SSE-KMS, versioning on, all public access blocked, TLS only", () => {
    const bucket = h.one(T.bucket, "data");
    const sse = h.one(T.bucketSse, "data");
    assert.equal(sse.inputs.bucket, bucket.id);
    const rule = sse.inputs.rules[0].applyServerSideEncryptionByDefault;
    assert.ok(["aws:kms", "AES256"].includes(rule.sseAlgorithm), `SSE ${rule.sseAlgorithm}`);
    assert.equal(h.one(T.bucketVersioning, "data").inputs.versioningConfiguration.status, "Enabled");
    const pab = h.one(T.bucketPab, "data");
    assert.equal(pab.inputs.bucket, bucket.id);
    for (const flag of ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"]) {
      assert.equal(pab.inputs[flag], true, flag);
    }
    const policy = policyOf(h.one(T.bucketPolicy, "data"));
    const tls = policy.Statement.find((s) => s.Effect === "Deny" && s.Condition?.Bool?.["aws:SecureTransport"] === "false");
    assert.ok(tls, "a statement denying requests without TLS");
    assert.equal(tls.Action, "s3:*");
    assert.deepEqual(new Set(tls.Resource), new Set([bucket.state.arn, `${bucket.state.arn}/*`]));
    assert.ok(!policy.Statement.some((s) => s.Effect === "Allow"), "the bucket policy grants nothing");
  });

  test("Quire's task role may use that bucket and nothing else", () => {
    const bucket = h.one(T.bucket, "data");
    const td = h.one(T.taskDef, "api");
    assert.equal(h.one(T.taskDef, "worker").inputs.taskRoleArn, td.inputs.taskRoleArn);
    const policy = policyOfRole(roleByArn(td.inputs.taskRoleArn));
    for (const s of policy.Statement) {
      assert.equal(s.Effect, "Allow");
      for (const action of asList(s.Action) as string[]) assert.ok(/^(s3|kms):/.test(action), action);
      for (const resource of asList(s.Resource) as string[]) {
        assert.ok(
          resource === bucket.state.arn || resource === `${bucket.state.arn}/*` || resource === h.one("aws:kms/key:Key", "data-key").state.arn,
          `unexpected resource ${resource}`,
        );
      }
    }
    assert.ok(policy.Statement.some((s) => asList(s.Action).includes("s3:PutObject")), "may write");
    assert.ok(policy.Statement.some((s) => asList(s.Action).includes("s3:GetObject")), "may read");
  });

  test("EFS for JetStream is encrypted and only reachable through access points over TLS", () => {
    const fs = h.one(T.efs, "nats");
    assert.equal(fs.inputs.encrypted, true);
    const policy = policyOf(h.one(T.efsPolicy, "nats"));
    assert.ok(policy.Statement.some((s) => s.Effect === "Deny" && s.Condition?.Bool?.["aws:SecureTransport"] === "false"), "EFS: TLS only");
  });
});

describe("NATS JetStream cluster", () => {
  const nodes = () => h.ofType(T.service).filter((s) => s.name.startsWith("nats-"));

  test("three nodes, one task each, never two tasks on one store", () => {
    assert.equal(nodes().length, 3);
    for (const s of nodes()) {
      assert.equal(s.inputs.desiredCount, 1);
      assert.equal(s.inputs.deploymentMinimumHealthyPercent, 0);
      assert.equal(s.inputs.deploymentMaximumPercent, 100);
    }
  });

  test("each node has its own encrypted EFS access point and sync_interval: always", () => {
    const accessPoints = h.ofType(T.accessPoint);
    assert.equal(accessPoints.length, 3);
    const used = new Set<string>();
    for (let i = 1; i <= 3; i++) {
      const td = h.one(T.taskDef, `nats-${i}`);
      const [volume] = td.inputs.volumes;
      assert.equal(volume.efsVolumeConfiguration.transitEncryption, "ENABLED");
      used.add(volume.efsVolumeConfiguration.authorizationConfig.accessPointId);
      const [c] = containersOf(td);
      const conf: string = c.environment.find((e: any) => e.name === "NATS_CONFIG").value;
      assert.match(conf, /jetstream \{[^}]*store_dir: "\/data\/jetstream"[^}]*sync_interval: always/);
      assert.match(conf, new RegExp(`server_name: "nats-${i}"`));
      const routes = [...conf.matchAll(/nats-route:\/\/(nats-\d)\.prod\.quire\.internal:6222/g)].map((m) => m[1]);
      assert.deepEqual(routes, ["nats-1", "nats-2", "nats-3"]);
      assert.match(conf, /password: \$NATS_PASSWORD/);
      assert.deepEqual(c.secrets, [{ name: "NATS_PASSWORD", valueFrom: h.one(T.secret, "nats-password").state.arn }]);
      assert.equal(c.mountPoints[0].containerPath, "/data");
    }
    assert.deepEqual(used, new Set(accessPoints.map((a) => a.id)));
  });

  test("Quire is given all three nodes, with credentials, as a secret", () => {
    const url: string = h.one(T.secretVersion, "nats-url").inputs.secretString;
    const password = h.one(T.password, "nats-password").state.result;
    assert.deepEqual(
      url.split(","),
      [1, 2, 3].map((i) => `nats://quire:${password}@nats-${i}.prod.quire.internal:4222`),
    );
  });
});

describe("autoscaling", () => {
  test("both services scale on average CPU between the configured bounds", () => {
    for (const kind of ["api", "worker"]) {
      const target = h.one(T.scalingTarget, kind);
      assert.equal(target.inputs.serviceNamespace, "ecs");
      assert.equal(target.inputs.scalableDimension, "ecs:service:DesiredCount");
      assert.equal(target.inputs.resourceId, `service/quire-prod/${kind}`);
      assert.equal(target.inputs.minCapacity, Number(config[`quire:${kind}MinCapacity`]));
      assert.equal(target.inputs.maxCapacity, Number(config[`quire:${kind}MaxCapacity`]));
      const policy = h.one(T.scalingPolicy, `${kind}-cpu`);
      assert.equal(policy.inputs.policyType, "TargetTrackingScaling");
      assert.equal(policy.inputs.resourceId, target.inputs.resourceId);
      const tracking = policy.inputs.targetTrackingScalingPolicyConfiguration;
      assert.equal(tracking.predefinedMetricSpecification.predefinedMetricType, "ECSServiceAverageCPUUtilization");
      assert.equal(tracking.targetValue, Number(config["quire:cpuTargetPercent"]));
      assert.equal(h.one(T.service, kind).inputs.desiredCount, Number(config[`quire:${kind}DesiredCount`]));
    }
  });
});

describe("outputs", () => {
  test("the ALB's DNS name, the ECR repository URL and the bucket name are exported", async () => {
    assert.equal(await outputValue(program.albDnsName), h.one(T.lb, "alb").state.dnsName);
    assert.equal(await outputValue(program.ecrRepositoryUrl), h.one(T.ecr, "quire").state.repositoryUrl);
    assert.equal(await outputValue(program.bucketName), h.one(T.bucket, "data").state.bucket);
    assert.equal(program.natsUrl, "nats://nats-1.prod.quire.internal:4222,nats://nats-2.prod.quire.internal:4222,nats://nats-3.prod.quire.internal:4222");
  });
});
