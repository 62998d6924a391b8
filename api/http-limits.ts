/**
 * Limits below the routes: a time limit on every phase of a request (headers, body, handler, idle
 * keep-alive), a cap on open connections per client address, typed answers for requests the HTTP
 * parser rejects, and an answer to CONNECT. Node's server has no request timeout under Fastify's
 * defaults (requestTimeout 0), so a body shorter than its Content-Length held a socket for ever.
 * This module must not know about routes beyond their `config.handlerTimeoutMs`.
 */
import type { Server, ServerOptions } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { ServeConfig } from './config.js';
import { ApiError, STATUS_BY_CODE, type ApiErrorCode } from './errors.js';

export type HttpLimits = Pick<ServeConfig['limits'], 'headersTimeoutMs' | 'requestTimeoutMs' | 'handlerTimeoutMs' | 'keepAliveTimeoutMs' | 'idleTimeoutMs' | 'connectionsPerClient'>;

/** Route option: a handler deadline other than the default (reloads take longer). */
export interface RouteDeadline {
  handlerTimeoutMs?: number;
}

/**
 * Fastify's server options for these limits: node's headersTimeout and requestTimeout (the whole
 * request, body included, answered 408), the socket idle timeout and keep-alive timeout. Node
 * checks the first two every connectionsCheckingInterval (30 s by default), so the interval is
 * scaled to the shorter of them. The idle timeout is at least the handler deadline plus a second.
 */
export function serverOptions(limits: HttpLimits): {
  requestTimeout: number;
  connectionTimeout: number;
  keepAliveTimeout: number;
  http: ServerOptions;
  clientErrorHandler: (error: Error & { code?: string }, socket: Socket) => void;
} {
  const headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  return {
    requestTimeout: limits.requestTimeoutMs,
    // Node applies the idle timeout while a handler runs too (the socket is silent then): it must not cut a request the handler deadline still allows.
    connectionTimeout: Math.max(limits.idleTimeoutMs, limits.handlerTimeoutMs + 1000),
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: { headersTimeout, requestTimeout: limits.requestTimeoutMs, connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))) },
    clientErrorHandler: answerClientError,
  };
}

/** A complete HTTP/1.1 answer with `{error, message}`, for sockets no Fastify reply owns. */
export function rawAnswer(code: ApiErrorCode, message: string): string {
  const body = JSON.stringify({ error: code, message });
  const status = STATUS_BY_CODE[code];
  return `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 405: 'Method Not Allowed', 408: 'Request Timeout', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large' };

/**
 * What the HTTP parser and node's timeouts reject, answered like every other error (Fastify's
 * default answers `{"error":"Bad Request","message":"Client Error"}`, without our codes).
 */
function answerClientError(this: FastifyInstance, error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  let answer: string;
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') answer = rawAnswer('REQUEST_TIMEOUT', 'the request (headers and body) did not arrive in time');
  else if (error.code === 'HPE_HEADER_OVERFLOW') answer = rawAnswer('HEADERS_TOO_LARGE', 'the request headers are too large');
  else answer = rawAnswer('BAD_REQUEST', `malformed HTTP request (${error.code ?? 'parse error'})`);
  this.log.debug({ code: error.code }, 'client error');
  // As node's own handler: write only where no answer has started on this socket.
  const pending = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !pending?.headersSent) socket.end(answer);
  socket.destroySoon();
}

/**
 * Caps open connections per client address: past the cap a connection gets one 429 and is
 * closed, so a handful of clients holding sockets cannot take every descriptor of a node.
 */
export function capConnectionsPerClient(server: Server, perClient: number): void {
  const open = new Map<string, number>();
  server.prependListener('connection', (socket: Socket) => {
    const client = socket.remoteAddress ?? 'unknown';
    const count = (open.get(client) ?? 0) + 1;
    if (count > perClient) {
      socket.end(rawAnswer('TOO_MANY_CONNECTIONS', `at most ${perClient} open connections per client; close some and retry`));
      // Half-closed: the parser may still read the request; nothing more is written.
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    open.set(client, count);
    socket.once('close', () => {
      const left = (open.get(client) ?? 1) - 1;
      if (left <= 0) open.delete(client);
      else open.set(client, left);
    });
  });
}

/** CONNECT (proxy tunnels) is not served: answered 405 instead of a dropped socket. */
export function answerConnect(server: Server): void {
  server.on('connect', (_request, socket: Socket) => {
    socket.on('error', () => undefined);
    socket.end(rawAnswer('METHOD_NOT_ALLOWED', 'CONNECT is not supported: this is not a proxy'));
  });
}

/**
 * A deadline on each request from its arrival: a request still unanswered then gets 503
 * DEADLINE_EXCEEDED and its connection closes. Replies whose headers are out (streams) run on.
 */
export function installHandlerDeadline(app: FastifyInstance, defaultMs: number): void {
  app.addHook('onRequest', (request, reply, done) => {
    const ms = (request.routeOptions.config as RouteDeadline | undefined)?.handlerTimeoutMs ?? defaultMs;
    const timer = setTimeout(() => {
      if (reply.sent || reply.raw.headersSent) return;
      request.log.warn({ route: request.routeOptions.url, ms }, 'request deadline passed');
      void reply.header('connection', 'close').send(new ApiError('DEADLINE_EXCEEDED', `the request did not complete within ${ms} ms`));
    }, ms);
    timer.unref();
    reply.raw.once('close', () => clearTimeout(timer));
    done();
  });
}
