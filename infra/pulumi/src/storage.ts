// The bucket for book texts (`texts/`, Quire's text store) and model files (`models/`), and the
// ECR repository for Quire's image.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import type { StackConfig } from "./config";

export interface Storage {
  key: aws.kms.Key;
  bucket: aws.s3.Bucket;
  repository: aws.ecr.Repository;
}

export function createStorage(cfg: StackConfig): Storage {
  const key = new aws.kms.Key("data-key", {
    description: `Quire ${cfg.stack}: book texts and models in S3`,
    enableKeyRotation: true,
    deletionWindowInDays: 30,
  });
  new aws.kms.Alias("data-key", { name: `alias/quire-${cfg.stack}-data`, targetKeyId: key.keyId });

  const bucket = new aws.s3.Bucket("data", {
    bucketPrefix: `quire-${cfg.stack}-data-`,
    forceDestroy: false,
    tags: { purpose: "book texts and model files" },
  });
  new aws.s3.BucketOwnershipControls("data", {
    bucket: bucket.id,
    rule: { objectOwnership: "BucketOwnerEnforced" }, // no ACLs at all
  });
  new aws.s3.BucketPublicAccessBlock("data", {
    bucket: bucket.id,
    blockPublicAcls: true,
    blockPublicPolicy: true,
    ignorePublicAcls: true,
    restrictPublicBuckets: true,
  });
  new aws.s3.BucketServerSideEncryptionConfiguration("data", {
    bucket: bucket.id,
    rules: [
      {
        applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: key.arn },
        bucketKeyEnabled: true,
      },
    ],
  });
  new aws.s3.BucketVersioning("data", {
    bucket: bucket.id,
    versioningConfiguration: { status: "Enabled" },
  });
  new aws.s3.BucketLifecycleConfiguration("data", {
    bucket: bucket.id,
    rules: [
      {
        id: "old-versions-and-failed-uploads",
        status: "Enabled",
        filter: {},
        noncurrentVersionExpiration: { noncurrentDays: 90 },
        abortIncompleteMultipartUpload: { daysAfterInitiation: 7 },
      },
    ],
  });
  new aws.s3.BucketPolicy("data", {
    bucket: bucket.id,
    policy: pulumi.jsonStringify({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "TlsOnly",
          Effect: "Deny",
          Principal: "*",
          Action: "s3:*",
          Resource: [bucket.arn, pulumi.interpolate`${bucket.arn}/*`],
          Condition: { Bool: { "aws:SecureTransport": "false" } },
        },
        {
          Sid: "Tls12OrLater",
          Effect: "Deny",
          Principal: "*",
          Action: "s3:*",
          Resource: [bucket.arn, pulumi.interpolate`${bucket.arn}/*`],
          Condition: { NumericLessThan: { "s3:TlsVersion": "1.2" } },
        },
      ],
    }),
  });

  const repository = new aws.ecr.Repository("quire", {
    name: `quire-${cfg.stack}`,
    imageTagMutability: "IMMUTABLE",
    imageScanningConfiguration: { scanOnPush: true },
    encryptionConfigurations: [{ encryptionType: "AES256" }],
    forceDelete: false,
  });
  new aws.ecr.LifecyclePolicy("quire", {
    repository: repository.name,
    policy: JSON.stringify({
      rules: [
        {
          rulePriority: 1,
          description: "keep the newest 100 images",
          selection: { tagStatus: "any", countType: "imageCountMoreThan", countNumber: 100 },
          action: { type: "expire" },
        },
      ],
    }),
  });

  return { key, bucket, repository };
}
