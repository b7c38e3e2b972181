/**
 * The BGP-4 wire codec: Buffer <-> typed messages. Pure: no sockets, files or timers.
 * See each module's header for the RFC sections it implements.
 */
export * from './attributes.js';
export * from './constants.js';
export * from './context.js';
export * from './error.js';
export * from './framer.js';
export * from './message.js';
export * from './nlri.js';
export * from './notification.js';
export * from './open.js';
export * from './route-refresh.js';
export * from './update.js';
export * from './writer.js';
export * from './validate.js';
