// A guard for the tests themselves. On Node 20, a failing `assert.ok(x)` / `assert(x)` without a
// message makes Node look up the failing expression in the source; with TypeScript run through
// tsx that lookup can spin forever instead of failing. So every such call carries a message.

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import * as ts from "typescript";

test("every assert.ok in the tests has a message", () => {
  const dir = __dirname;
  const offenders: string[] = [];
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".ts"))) {
    const source = ts.createSourceFile(file, fs.readFileSync(path.join(dir, file), "utf8"), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node) => {
      if (ts.isCallExpression(node)) {
        const callee = node.expression.getText(source);
        if ((callee === "assert.ok" || callee === "assert") && node.arguments.length < 2) {
          offenders.push(`${file}:${source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1}`);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  assert.deepEqual(offenders, []);
});
