/**
 * The OpenAPI document against docs/protocol.md: every status the status tables of `/v1/rpc`
 * and `/oidc/backchannel-logout` give is a response of the document, and no other; a 429 or
 * 503 that the tables say carries `Retry-After` declares the header.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openApiDocument } from '../../../src/protocol/openapi.js';

const PROTOCOL = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');

/** The rows of the first `| answer | status |` table after `heading`: [answer, status]. */
function statusTable(heading: string): [string, string][] {
  const from = PROTOCOL.indexOf(heading);
  expect(from, heading).toBeGreaterThanOrEqual(0);
  const table = PROTOCOL.slice(PROTOCOL.indexOf('| answer | status |', from)).split('\n\n', 1)[0]!;
  return [...table.matchAll(/^\| (.*) \| (\d{3})\b.*\|$/gm)].map((m) => [m[1]!, m[2]!]);
}

type Responses = Record<string, { headers?: Record<string, unknown> }>;
const responsesOf = (path: string): Responses => (openApiDocument() as any).paths[path].post.responses as Responses;

describe('the OpenAPI document and docs/protocol.md', () => {
  for (const [path, heading] of [
    ['/v1/rpc', '### HTTP'],
    ['/oidc/backchannel-logout', '**`POST /oidc/backchannel-logout`**'],
  ] as const) {
    it(`${path}: the statuses of the table, each one a response, Retry-After where the table names it`, () => {
      const rows = statusTable(heading);
      const responses = responsesOf(path);
      expect(Object.keys(responses).sort()).toEqual([...new Set(rows.map(([, status]) => status))].sort());
      const withRetry = rows.filter(([answer]) => answer.includes('Retry-After')).map(([, status]) => status);
      expect(withRetry.length, path).toBeGreaterThan(0);
      for (const status of withRetry) expect(Object.keys(responses[status]!.headers ?? {}), `${path} ${status}`).toContain('Retry-After');
    });
  }
});
