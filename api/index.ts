/** The service's public face. */
export { buildApp, type AppOptions } from './app.js';
export { startServer, type RunningServer } from './server.js';
export { buildConfig, readConfigFile, DEFAULT_LIMITS, type ServeConfig, type ApiKeyEntry, type Role } from './config.js';
export { hashKey } from './auth.js';
export { STATUS_BY_CODE, type ApiErrorCode } from './errors.js';
