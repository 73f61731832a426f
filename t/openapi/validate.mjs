// Validates OpenAPI documents against the OpenAPI schema of their version
// (3.1 here), with @seriousme/openapi-schema-validator:
//
//   node t/openapi/validate.mjs FILE...
//
// Prints one line per file, "valid FILE" or "invalid FILE" followed by the
// validator's errors; exits 1 when any file is invalid. Environment:
// OPENAPI_VALIDATOR (the package's directory, default: resolved from here,
// e.g. after `npm ci --prefix t/openapi`).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const where = process.env.OPENAPI_VALIDATOR || '@seriousme/openapi-schema-validator';
const { Validator } = await import(require.resolve(where));

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node validate.mjs FILE...');
  process.exit(2);
}
let bad = 0;
for (const file of files) {
  const validator = new Validator();
  const res = await validator.validate(JSON.parse(readFileSync(file, 'utf8')));
  if (res.valid) {
    console.log(`valid ${file} (OpenAPI ${validator.version})`);
  } else {
    bad++;
    console.log(`invalid ${file}`);
    console.log(JSON.stringify(res.errors, null, 1));
  }
}
process.exit(bad ? 1 : 0);
