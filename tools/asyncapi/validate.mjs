// Parses docs/asyncapi.yaml with the AsyncAPI parser, resolving its $refs to docs/schemas/, and prints
// every diagnostic; exits non-zero on an error (warnings are printed, not fatal).

import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Parser, fromFile } from '@asyncapi/parser';

const here = path.dirname(fileURLToPath(import.meta.url));
const file = path.resolve(here, '../../docs/asyncapi.yaml');
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, file).parse();
const severity = ['error', 'warning', 'info', 'hint'];
let errors = 0;
for (const d of diagnostics) {
  const level = severity[d.severity] ?? String(d.severity);
  if (d.severity === 0) errors += 1;
  console.log(`${level}: ${d.message} at ${d.path.join('.')}`);
}
if (!document || errors > 0) {
  console.log(`docs/asyncapi.yaml: ${errors} error(s)`);
  process.exit(1);
}
const channels = document.channels().all().length;
const operations = document.operations().all().length;
const messages = document.components().messages().all().length;
console.log(
  `docs/asyncapi.yaml: valid AsyncAPI ${document.version()}, ${channels} channels, ` +
    `${operations} operations, ${messages} messages, ${diagnostics.length} diagnostics`,
);
