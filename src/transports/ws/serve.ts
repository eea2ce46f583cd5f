import type { Config } from '../../config.js';
import { ConfigError } from '../../errors.js';

/** Placeholder until the WebSocket server lands (issue 3). */
export async function serve(_config: Config): Promise<void> {
  throw new ConfigError('serve is not available in this build yet; use stdio');
}
