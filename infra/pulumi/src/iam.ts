// Small helpers for IAM roles that ECS tasks assume.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface Statement {
  Sid?: string;
  Effect: "Allow" | "Deny";
  Action: string | string[];
  Resource: pulumi.Input<string> | pulumi.Input<string>[];
  Condition?: Record<string, Record<string, pulumi.Input<string> | pulumi.Input<string>[]>>;
}

/** A role ECS tasks can assume (as task role or as task execution role), with one inline policy. */
export function taskRole(name: string, description: string, statements: Statement[]): aws.iam.Role {
  const role = new aws.iam.Role(name, {
    description,
    assumeRolePolicy: JSON.stringify({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { Service: "ecs-tasks.amazonaws.com" },
          Action: "sts:AssumeRole",
        },
      ],
    }),
  });
  new aws.iam.RolePolicy(name, {
    role: role.id,
    policy: pulumi.jsonStringify({ Version: "2012-10-17", Statement: statements }),
  });
  return role;
}

/** What a task execution role needs to start a task: pull its image, write its logs, read its secrets. */
export function executionStatements(opts: {
  repositoryArn?: pulumi.Input<string>;
  logGroupArns: pulumi.Input<string>[];
  secretArns: pulumi.Input<string>[];
}): Statement[] {
  const statements: Statement[] = [];
  if (opts.repositoryArn !== undefined) {
    statements.push(
      { Sid: "EcrAuth", Effect: "Allow", Action: "ecr:GetAuthorizationToken", Resource: "*" },
      {
        Sid: "EcrPull",
        Effect: "Allow",
        Action: ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        Resource: opts.repositoryArn,
      },
    );
  }
  statements.push(
    {
      Sid: "Logs",
      Effect: "Allow",
      Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
      Resource: opts.logGroupArns.map((arn) => pulumi.interpolate`${arn}:*`),
    },
    { Sid: "Secrets", Effect: "Allow", Action: "secretsmanager:GetSecretValue", Resource: opts.secretArns },
  );
  return statements;
}
