// IPv4 address arithmetic for the VPC layout. Kept free of Pulumi so it is plain to test.

export interface Cidr {
  base: number; // the network address as an unsigned 32-bit integer
  prefix: number;
}

export function parseIp(ip: string): number {
  const parts = ip.split(".");
  if (parts.length !== 4) throw new Error(`not an IPv4 address: ${ip}`);
  return parts.reduce((acc, part) => {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) throw new Error(`not an IPv4 address: ${ip}`);
    return acc * 256 + Number(part);
  }, 0);
}

export function formatIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
}

export function parseCidr(cidr: string): Cidr {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(cidr);
  if (!m) throw new Error(`not an IPv4 CIDR block: ${cidr}`);
  const base = parseIp(m[1]);
  const prefix = Number(m[2]);
  if (prefix > 32) throw new Error(`not an IPv4 CIDR block: ${cidr}`);
  if (base % 2 ** (32 - prefix) !== 0) throw new Error(`${cidr} has host bits set`);
  return { base, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.base)}/${c.prefix}`;
}

/**
 * The subnets of a /16 VPC: per AZ one small public subnet (/26: the ALB's nodes and a NAT
 * gateway, nothing else) at the bottom of the range, and one large private subnet (/20) for
 * everything else.
 */
export function subnetLayout(vpcCidr: string, azCount: number): { public: string[]; private: string[] } {
  const vpc = parseCidr(vpcCidr);
  if (vpc.prefix !== 16) throw new Error(`vpcCidr must be a /16 (it is ${vpcCidr})`);
  if (azCount < 1 || azCount > 3) throw new Error(`between 1 and 3 availability zones (asked for ${azCount})`);
  const pub: string[] = [];
  const priv: string[] = [];
  for (let i = 0; i < azCount; i++) {
    pub.push(formatCidr({ base: vpc.base + i * 64, prefix: 26 }));
    priv.push(formatCidr({ base: vpc.base + (i + 1) * 4096, prefix: 20 }));
  }
  return { public: pub, private: priv };
}

/** Every address of a block (small blocks only: it is used for the /26 public subnets). */
export function addresses(cidr: string): string[] {
  const c = parseCidr(cidr);
  if (c.prefix < 24) throw new Error(`refusing to list the addresses of ${cidr} (larger than a /24)`);
  const out: string[] = [];
  for (let i = 0; i < 2 ** (32 - c.prefix); i++) out.push(formatIp(c.base + i));
  return out;
}

export function contains(cidr: string, ip: string): boolean {
  const c = parseCidr(cidr);
  const n = parseIp(ip);
  return n >= c.base && n < c.base + 2 ** (32 - c.prefix);
}
