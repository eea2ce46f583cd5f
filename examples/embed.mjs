import { startGateway } from 'auth-gateway';

// Options are the GATEWAY_* settings in camelCase; the environment supplies the others.
const gateway = await startGateway({ store: 'memory://', sessionTtl: 3600, logLevel: 'warn' });
console.log(`gateway listening at ${gateway.url}`);
process.once('SIGTERM', () => gateway.close()); // answers what was read, closes sockets with 1012; then the process exits
