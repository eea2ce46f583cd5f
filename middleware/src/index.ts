export { GatewaySessions } from './gateway-sessions.js';
export type { GatewaySessionsOptions, GatewaySessionsStats, LoginOptions, SessionMiddleware, SessionRequest } from './gateway-sessions.js';
export type { GatewaySession, SessionCacheStats } from './session-cache.js';
export { GatewaySessionError } from './errors.js';
export type { SessionErrorCode } from './errors.js';
export { fastifySessions } from './fastify.js';
export type { FastifyLikeInstance, FastifyLikeReply, FastifyLikeRequest, FastifySessionsOptions, FastifySessionsPlugin } from './fastify.js';
