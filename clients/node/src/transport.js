// HTTP to one store-sql server over a unix socket or TCP, on keep-alive connections, with
// the retry rule the whole client relies on:
//
//   - a request that never reached the server (connection refused, socket file missing,
//     server restarting) is sent again, whatever it is;
//   - BUSY (503) means the server refused the request before doing anything, so it is sent
//     again after Retry-After, whatever it is;
//   - a request that reached the server and then lost its connection or timed out is sent
//     again only when repeating it is harmless: reads, and writes the server de-duplicates
//     or guards (idempotency keys, an expected state). Any other write ends in
//     StoreUnavailableError with `maybeApplied: true`, because repeating it could write twice.

import http from "node:http";
import https from "node:https";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { BusyError, StoreUnavailableError, errorFromResponse } from "./errors.js";

/** How a request may be repeated after it reached the server (see the rule above). */
export const Replay = Object.freeze({
  /** A read: always safe to repeat. */
  READ: "read",
  /** A write made safe to repeat by idempotency keys or an expected-state guard. */
  GUARDED: "guarded",
  /** A write whose repeat leaves what one leaves (an export, a re-import, a reclaim). */
  IDEMPOTENT: "idempotent",
  /** A write that could apply twice: repeated only when it surely never arrived. */
  UNGUARDED: "unguarded",
});

const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOENT", "EACCES", "ENOTFOUND", "EAI_AGAIN"]);

/** A certificate the client does not trust stays untrusted: sending again cannot help. */
function isCertificateError(error) {
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(String(error?.code ?? ""));
}

export class Transport {
  /**
   * @param {import("../index.js").StoreClientOptions} options
   */
  constructor(options) {
    if (options.socketPath && options.url) {
      throw new TypeError("give either socketPath or url, not both");
    }
    this.socketPath = options.socketPath;
    const url = new URL(options.url ?? "http://localhost");
    this.secure = url.protocol === "https:";
    this.host = url.hostname.replace(/^\[|\]$/g, "");
    this.port = url.port ? Number(url.port) : this.secure ? 443 : 80;
    this.basePath = url.pathname.replace(/\/+$/, "");
    this.token = options.token ?? readToken(options.tokenFile);
    this.maxAttempts = options.maxAttempts ?? 6;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 5_000;
    const agentOptions = {
      keepAlive: true,
      // Idle sockets close before the server's own keep-alive timeout (uvicorn: 5 s), so a
      // request is never written on a socket the server is closing.
      timeout: options.idleSocketMs ?? 4_000,
      maxSockets: options.maxSockets ?? 64,
      ca: options.ca,
    };
    this.agent = this.secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    this.ca = options.ca;
  }

  /** Closes the idle keep-alive connections; requests after this open new ones. */
  close() {
    this.agent.destroy();
  }

  /**
   * One call, retried by the rule at the top of this file.
   * @param {{method: string, path: string, body?: unknown, headers?: Record<string, string>,
   *   replay: string, signal?: AbortSignal}} call
   * @returns {Promise<{status: number, headers: import("node:http").IncomingHttpHeaders,
   *   body: Buffer, attempts: number}>}
   */
  async request(call) {
    const payload = call.body === undefined ? undefined : Buffer.from(JSON.stringify(call.body));
    for (let attempt = 1; ; attempt++) {
      let outcome;
      try {
        outcome = await this.#once(call, payload);
      } catch (failure) {
        const sent = failure.sent;
        const repeatable = (!sent || call.replay !== Replay.UNGUARDED) && !isCertificateError(failure);
        if (!repeatable || attempt >= this.maxAttempts || call.signal?.aborted) {
          throw new StoreUnavailableError(
            `${call.method} ${call.path}: ${failure.message}` +
              (sent && call.replay === Replay.UNGUARDED ? " (the write may have been applied)" : ""),
            { maybeApplied: Boolean(sent) && call.replay !== Replay.READ, cause: failure },
          );
        }
        await sleep(this.#backoff(attempt), undefined, { signal: call.signal });
        continue;
      }
      if (outcome.status >= 200 && outcome.status < 300) {
        return { ...outcome, attempts: attempt };
      }
      const retryAfterMs = parseRetryAfter(outcome.headers["retry-after"]);
      const error = errorFromResponse(outcome.status, outcome.body, retryAfterMs);
      error.attempts = attempt;
      if (error instanceof BusyError && attempt < this.maxAttempts) {
        await sleep(Math.min(retryAfterMs ?? this.#backoff(attempt), this.maxRetryDelayMs), undefined, {
          signal: call.signal,
        });
        continue;
      }
      throw error;
    }
  }

  /**
   * A streaming GET (server-sent events, a transcript's bytes): the response, unread.
   * @param {{path: string, headers?: Record<string, string>, signal?: AbortSignal}} call
   * @returns {Promise<import("node:http").IncomingMessage>}
   */
  async open(call) {
    for (let attempt = 1; ; attempt++) {
      /** @type {import("node:http").IncomingMessage} */
      let response;
      try {
        response = await new Promise((resolve, reject) => {
          const req = this.#send(
            { method: "GET", path: call.path, headers: call.headers, signal: call.signal },
            undefined,
            { agent: false, timeout: 0 },
          );
          req.on("response", resolve);
          req.on("error", reject);
          req.end();
        });
      } catch (failure) {
        if (attempt >= this.maxAttempts || call.signal?.aborted || isCertificateError(failure)) {
          throw new StoreUnavailableError(`GET ${call.path}: ${failure.message}`, {
            maybeApplied: false,
            cause: failure,
          });
        }
        await sleep(this.#backoff(attempt), undefined, { signal: call.signal });
        continue;
      }
      if (response.statusCode >= 200 && response.statusCode < 300) return response;
      const body = await readAll(response);
      const retryAfterMs = parseRetryAfter(response.headers["retry-after"]);
      const error = errorFromResponse(response.statusCode ?? 0, body, retryAfterMs);
      if (error instanceof BusyError && attempt < this.maxAttempts) {
        await sleep(Math.min(retryAfterMs ?? this.#backoff(attempt), this.maxRetryDelayMs), undefined, {
          signal: call.signal,
        });
        continue;
      }
      throw error;
    }
  }

  #backoff(attempt) {
    const base = Math.min(50 * 2 ** (attempt - 1), this.maxRetryDelayMs);
    return base / 2 + Math.random() * (base / 2);
  }

  /** One attempt; a failure carries `sent`: whether the request may have reached the server. */
  #once(call, payload) {
    return new Promise((resolve, reject) => {
      let sent = false;
      const req = this.#send(call, payload, { agent: this.agent, timeout: this.timeoutMs });
      req.on("socket", (socket) => {
        if (req.reusedSocket || !socket.connecting) {
          sent = true;
        } else {
          socket.once(this.secure ? "secureConnect" : "connect", () => {
            sent = true;
          });
        }
      });
      req.on("timeout", () => {
        req.destroy(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: "ETIMEDOUT" }));
      });
      req.on("error", (error) => {
        error.sent = sent && !NOT_SENT_CODES.has(error.code);
        reject(error);
      });
      req.on("response", (response) => {
        const chunks = [];
        response.on("data", (chunk) => chunks.push(chunk));
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }),
        );
        response.on("error", (error) => {
          error.sent = true;
          reject(error);
        });
      });
      req.end(payload);
    });
  }

  #send(call, payload, { agent, timeout }) {
    const headers = {
      accept: "application/json",
      ...call.headers,
    };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (payload !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = String(payload.length);
    }
    const options = {
      method: call.method,
      path: this.basePath + call.path,
      headers,
      agent,
      timeout: timeout || undefined,
      signal: call.signal,
    };
    if (this.socketPath) {
      options.socketPath = this.socketPath;
      headers.host = "localhost";
    } else {
      options.host = this.host;
      options.port = this.port;
      if (this.ca) options.ca = this.ca;
    }
    return (this.secure ? https : http).request(options);
  }
}

/** @param {string | undefined} file */
function readToken(file) {
  if (!file) return undefined;
  return readFileSync(file, "utf8").trim();
}

/** @param {string | string[] | undefined} value */
export function parseRetryAfter(value) {
  if (typeof value !== "string" || value === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000);
  const when = Date.parse(value);
  return Number.isNaN(when) ? undefined : Math.max(0, when - Date.now());
}

/** @param {import("node:stream").Readable} stream */
export async function readAll(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}
