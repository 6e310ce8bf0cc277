// The VPC: per availability zone a small public subnet (the ALB's nodes and a NAT gateway) and a
// large private subnet (tasks, database, NATS, EFS). Nothing gets a public IP on launch; private
// subnets reach out through the NAT gateway(s), and S3 through a gateway endpoint.

import * as aws from "@pulumi/aws";

import { subnetLayout } from "./cidr";
import type { StackConfig } from "./config";

export interface Network {
  vpc: aws.ec2.Vpc;
  publicSubnets: aws.ec2.Subnet[];
  privateSubnets: aws.ec2.Subnet[];
  publicCidrs: string[];
  privateCidrs: string[];
  natGateways: aws.ec2.NatGateway[];
  privateRouteTables: aws.ec2.RouteTable[];
}

export function createNetwork(cfg: StackConfig): Network {
  const name = `quire-${cfg.stack}`;
  const layout = subnetLayout(cfg.vpcCidr, cfg.availabilityZones.length);

  const vpc = new aws.ec2.Vpc("vpc", {
    cidrBlock: cfg.vpcCidr,
    enableDnsHostnames: true, // needed by the Cloud Map private namespace and EFS mount names
    enableDnsSupport: true,
    tags: { Name: name },
  });

  // The default security group of a VPC allows all traffic between its members: empty it, so a
  // resource that ends up in it by mistake can talk to nothing.
  new aws.ec2.DefaultSecurityGroup("default-sg", { vpcId: vpc.id, ingress: [], egress: [], tags: { Name: `${name}-default-unused` } });

  const igw = new aws.ec2.InternetGateway("igw", { vpcId: vpc.id, tags: { Name: name } });

  const publicSubnets = cfg.availabilityZones.map(
    (az, i) =>
      new aws.ec2.Subnet(`public-${i + 1}`, {
        vpcId: vpc.id,
        cidrBlock: layout.public[i],
        availabilityZone: az,
        mapPublicIpOnLaunch: false,
        tags: { Name: `${name}-public-${az}`, tier: "public" },
      }),
  );
  const privateSubnets = cfg.availabilityZones.map(
    (az, i) =>
      new aws.ec2.Subnet(`private-${i + 1}`, {
        vpcId: vpc.id,
        cidrBlock: layout.private[i],
        availabilityZone: az,
        mapPublicIpOnLaunch: false,
        tags: { Name: `${name}-private-${az}`, tier: "private" },
      }),
  );

  const publicRt = new aws.ec2.RouteTable("public-rt", { vpcId: vpc.id, tags: { Name: `${name}-public` } });
  new aws.ec2.Route("public-default", { routeTableId: publicRt.id, destinationCidrBlock: "0.0.0.0/0", gatewayId: igw.id });
  publicSubnets.forEach((s, i) => new aws.ec2.RouteTableAssociation(`public-${i + 1}`, { subnetId: s.id, routeTableId: publicRt.id }));

  const natGateways: aws.ec2.NatGateway[] = [];
  for (let i = 0; i < cfg.natGateways; i++) {
    const eip = new aws.ec2.Eip(`nat-${i + 1}`, { domain: "vpc", tags: { Name: `${name}-nat-${i + 1}` } });
    natGateways.push(
      new aws.ec2.NatGateway(
        `nat-${i + 1}`,
        { allocationId: eip.id, subnetId: publicSubnets[i].id, connectivityType: "public", tags: { Name: `${name}-nat-${i + 1}` } },
        { dependsOn: [igw] },
      ),
    );
  }

  const privateRouteTables = privateSubnets.map((s, i) => {
    const rt = new aws.ec2.RouteTable(`private-rt-${i + 1}`, { vpcId: vpc.id, tags: { Name: `${name}-private-${i + 1}` } });
    new aws.ec2.Route(`private-default-${i + 1}`, {
      routeTableId: rt.id,
      destinationCidrBlock: "0.0.0.0/0",
      natGatewayId: natGateways[i % natGateways.length].id,
    });
    new aws.ec2.RouteTableAssociation(`private-${i + 1}`, { subnetId: s.id, routeTableId: rt.id });
    return rt;
  });

  // S3 traffic (book texts, models) stays on AWS's network and costs no NAT processing.
  new aws.ec2.VpcEndpoint("s3-endpoint", {
    vpcId: vpc.id,
    serviceName: `com.amazonaws.${cfg.region}.s3`,
    vpcEndpointType: "Gateway",
    routeTableIds: privateRouteTables.map((rt) => rt.id),
    tags: { Name: `${name}-s3` },
  });

  return {
    vpc,
    publicSubnets,
    privateSubnets,
    publicCidrs: layout.public,
    privateCidrs: layout.private,
    natGateways,
    privateRouteTables,
  };
}
