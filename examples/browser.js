import { GatewayClient } from '/client/src/index.js'; // served by the gateway

const client = new GatewayClient({ url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/` });
client.on('session_expiring', ({ expiresIn }) => console.log(`Your session ends in ${expiresIn} s`));
client.on('session_expired', ({ reason }) => console.log(`Session ended: ${reason}`)); // ttl | idle | destroyed | revoked | regenerated
await client.connect();
