// Server-sent events: a parser for the text/event-stream format (the WHATWG rules: fields
// `event`, `data`, `id`, `retry`; `:` starts a comment; a blank line dispatches) and a
// subscription that reconnects with `Last-Event-ID`, so the server resumes after the last
// event this side saw and nothing is lost or seen twice.

import { setTimeout as sleep } from "node:timers/promises";
import { BusyError, StoreUnavailableError } from "./errors.js";

/**
 * The events of one text/event-stream body, as `{event, data, id, retry}`: `id` is the last
 * `id:` field seen so far and `retry` the last `retry:` (the reconnection delay), as the
 * format defines both.
 * @param {AsyncIterable<Buffer | string>} body
 * @returns {AsyncGenerator<{event: string, data: string, id: string | undefined, retry?: number}>}
 */
export async function* parseEventStream(body) {
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  let event = "";
  let data = [];
  let lastId;
  let retry;
  let first = true;
  for await (const chunk of body) {
    buffer += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    if (first && buffer.length > 0) {
      if (buffer.charCodeAt(0) === 0xfeff) buffer = buffer.slice(1);
      first = false;
    }
    for (;;) {
      const match = /\r\n|\r|\n/.exec(buffer);
      // A lone "\r" at the end may be the first half of "\r\n": wait for the next chunk.
      if (!match || (match[0] === "\r" && match.index === buffer.length - 1)) break;
      const line = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      if (line === "") {
        if (data.length > 0) {
          yield { event: event || "message", data: data.join("\n"), id: lastId, retry };
        }
        event = "";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "id" && !value.includes("\0")) lastId = value;
      else if (field === "retry" && /^\d+$/.test(value)) retry = Number(value);
    }
  }
}

/**
 * Events of one stream path, reconnecting after a broken connection with the last id seen.
 * Each yielded event has its JSON `data` parsed.
 * @param {import("./transport.js").Transport} transport
 * @param {string} path
 * @param {{lastEventId?: string, signal?: AbortSignal, reconnect?: boolean,
 *   reconnectDelayMs?: number}} options
 */
export async function* subscribeEvents(transport, path, options = {}) {
  let lastEventId = options.lastEventId;
  let delayMs = options.reconnectDelayMs ?? 250;
  const reconnect = options.reconnect ?? true;
  const signal = options.signal;
  let connected = false;
  while (!signal?.aborted) {
    const headers = { accept: "text/event-stream" };
    if (lastEventId !== undefined) headers["last-event-id"] = lastEventId;
    let response;
    try {
      response = await transport.open({ path, headers, signal });
    } catch (error) {
      if (signal?.aborted) return;
      // Like EventSource: once the stream has been open, a server that is away (restarting)
      // is waited for; a first connection that fails, or a refusal (401, 404), is the caller's.
      const away = error instanceof StoreUnavailableError || error instanceof BusyError;
      if (!connected || !reconnect || !away) throw error;
      if (!(await pause(delayMs, signal))) return;
      continue;
    }
    connected = true;
    options.onOpen?.();
    try {
      for await (const raw of parseEventStream(response)) {
        if (raw.retry !== undefined) delayMs = raw.retry;
        if (raw.id !== undefined) lastEventId = raw.id;
        let data;
        try {
          data = JSON.parse(raw.data);
        } catch {
          data = raw.data;
        }
        yield { type: raw.event, id: raw.id, data };
      }
    } catch (error) {
      if (signal?.aborted || error?.name === "AbortError") return;
      // A broken stream is a reason to reconnect, like the end of one.
    } finally {
      response.destroy();
    }
    if (!reconnect) return;
    if (!(await pause(delayMs, signal))) return;
  }
}

/** Waits `ms`; false when `signal` aborted meanwhile. */
async function pause(ms, signal) {
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}
