// Reads Quire's settings structs from src/config.rs (the Rust source of truth) so the tests can
// check that every QUIRE_* variable the tasks get names a real setting: Quire refuses unknown
// keys at start-up (`deny_unknown_fields`).

import * as fs from "node:fs";
import * as path from "node:path";

export const CONFIG_RS = path.resolve(__dirname, "..", "..", "..", "src", "config.rs");

export type Structs = Map<string, Map<string, string>>;

export function parseStructs(source: string): Structs {
  const structs: Structs = new Map();
  for (const m of source.matchAll(/pub struct (\w+)\s*\{([\s\S]*?)\n\}/g)) {
    const fields = new Map<string, string>();
    for (const f of m[2].matchAll(/^\s*pub (\w+):\s*([^\n]+?),?\s*$/gm)) fields.set(f[1], f[2]);
    structs.set(m[1], fields);
  }
  return structs;
}

export function readStructs(): Structs | undefined {
  return fs.existsSync(CONFIG_RS) ? parseStructs(fs.readFileSync(CONFIG_RS, "utf8")) : undefined;
}

/**
 * Why `QUIRE_A__B` is not a setting, or undefined when it is one. Keys are lower-cased and split
 * on `__`, as Quire's figment environment provider does.
 */
export function unknownSetting(structs: Structs, variable: string): string | undefined {
  if (!variable.startsWith("QUIRE_")) return `${variable} lacks the QUIRE_ prefix`;
  const segments = variable.slice("QUIRE_".length).toLowerCase().split("__");
  let struct = "Settings";
  for (let i = 0; i < segments.length; i++) {
    const fields = structs.get(struct);
    if (!fields) return `${variable}: ${struct} is not a settings struct of config.rs`;
    const type = fields.get(segments[i]);
    if (type === undefined) return `${variable}: ${struct} has no field ${segments[i]}`;
    if (i < segments.length - 1) {
      struct = type.replace(/^Option<(.*)>$/, "$1").split("::").pop()!;
    } else if (structs.has(type)) {
      return `${variable}: ${segments[i]} is a table (${type}), not a value`;
    }
  }
  return undefined;
}
