import { randomBytes } from 'node:crypto';
import { freePort, start, stop, waitForPort } from './proc.js';

/** A random service key for the bench's gateways (service connections are not rate limited). */
export const SERVICE_KEY = randomBytes(32).toString('base64');

/**
 * @typedef {object} ServerOptions
 * @property {Record<string, string>} [env]
 * @property {string[]} [args]
 * @property {string[]} [nodeArgs] gateway only: node's own flags
 * @property {number} [ulimit] open-file limit
 * @property {number} [startTimeoutMs] gateway only: how long it may take to listen (default 20 s; fixtures are loaded first)
 */

/**
 * Starts `node dist/cli.js serve` on a free port; returns {url, child, port, stop}.
 * @param {any} ctx
 * @param {ServerOptions} [options]
 */
export async function startGateway(ctx, { env = {}, args = [], nodeArgs = [], ulimit, startTimeoutMs = 20000 } = {}) {
  const port = await freePort();
  const child = start('node', [...nodeArgs, ctx.cli, 'serve', ...args], {
    env: ctx.gatewayEnv({ GATEWAY_PORT: String(port), GATEWAY_HOST: '127.0.0.1', GATEWAY_SERVICE_KEY: SERVICE_KEY, ...env }),
    ulimit,
  });
  await waitForPort(port, startTimeoutMs, child);
  return { url: `ws://127.0.0.1:${port}/`, port, child, stop: () => stop(child, 'SIGKILL') };
}

/**
 * Starts one of bench/targets on a free port (the port is its first argument).
 * @param {any} ctx
 * @param {string} file
 * @param {ServerOptions} [options]
 */
export async function startTarget(ctx, file, { env = {}, ulimit, args = [] } = {}) {
  const port = await freePort();
  const child = start('node', [ctx.target(file), String(port), ...args], { env, ulimit });
  await waitForPort(port, 20000, child);
  return { url: `ws://127.0.0.1:${port}/`, port, child, stop: () => stop(child, 'SIGKILL') };
}
