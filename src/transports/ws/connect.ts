import { ConfigError } from '../../errors.js';

/** Placeholder until the WebSocket bridge lands (issue 3). */
export async function connect(_url: string, _o: { serviceKey?: string }): Promise<void> {
  throw new ConfigError('connect is not available in this build yet');
}
