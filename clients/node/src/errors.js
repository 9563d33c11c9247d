// The errors a StoreClient call can throw. The server answers every failure with
// `{"error": {"code", "message"}}`; the code picks the class, so callers branch with
// `instanceof` (or on `.code`) and never parse messages.

/** Root of every error this client throws. */
export class StoreServiceError extends Error {
  /**
   * @param {string} code the server's error code, or UNAVAILABLE for a transport failure
   * @param {string} message
   * @param {{status?: number, retryAfterMs?: number, cause?: unknown}} [details]
   */
  constructor(code, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = details.status ?? 0;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** 400: the request has the wrong shape; the message names the field. */
export class InvalidRequestError extends StoreServiceError {}

/** 401: the bearer token is missing or wrong. */
export class UnauthorizedError extends StoreServiceError {}

/** 404: the agent, session key, transcript or entry does not exist. */
export class NotFoundError extends StoreServiceError {}

/** 409: an expected state (`expect`, `expectSessionId`) did not hold; nothing was written. */
export class ConflictError extends StoreServiceError {}

/** 413: the request body is over the server's limit. */
export class TooLargeError extends StoreServiceError {}

/** 503: the server's writer is saturated; nothing was written. `retryAfterMs` says when to retry. */
export class BusyError extends StoreServiceError {}

/**
 * The server could not be reached or the connection broke. `maybeApplied` is true when the
 * request may have reached the server before the failure, so a write may or may not have
 * happened (only requests that are not safe to repeat end here with it set).
 */
export class StoreUnavailableError extends StoreServiceError {
  /**
   * @param {string} message
   * @param {{maybeApplied: boolean, cause?: unknown}} details
   */
  constructor(message, details) {
    super("UNAVAILABLE", message, { cause: details.cause });
    this.maybeApplied = details.maybeApplied;
  }
}

const BY_CODE = {
  INVALID: InvalidRequestError,
  UNAUTHORIZED: UnauthorizedError,
  NOT_FOUND: NotFoundError,
  CONFLICT: ConflictError,
  TOO_LARGE: TooLargeError,
  BUSY: BusyError,
};

const BY_STATUS = {
  400: "INVALID",
  401: "UNAUTHORIZED",
  404: "NOT_FOUND",
  409: "CONFLICT",
  413: "TOO_LARGE",
  503: "BUSY",
};

/**
 * The error for a non-2xx answer: the body's code when it has one, else the status's.
 * @param {number} status
 * @param {Buffer} body
 * @param {number | undefined} retryAfterMs
 */
export function errorFromResponse(status, body, retryAfterMs) {
  let code = BY_STATUS[status] ?? "HTTP_" + status;
  let message = `HTTP ${status}`;
  try {
    const parsed = JSON.parse(body.toString("utf8"));
    if (parsed && typeof parsed.error === "object" && parsed.error !== null) {
      if (typeof parsed.error.code === "string") code = parsed.error.code;
      if (typeof parsed.error.message === "string") message = parsed.error.message;
    }
  } catch {
    // A body that is not the documented JSON (a proxy's page, say) keeps the status's code.
  }
  const ErrorClass = BY_CODE[code] ?? StoreServiceError;
  return new ErrorClass(code, message, { status, retryAfterMs });
}
