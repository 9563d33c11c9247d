// @store-sql/client: the gateway's session store over HTTP (`store-sql serve`).
export { StoreClient, isIdempotentAppend } from "./client.js";
export {
  StoreServiceError,
  InvalidRequestError,
  UnauthorizedError,
  NotFoundError,
  ConflictError,
  TooLargeError,
  BusyError,
  StoreUnavailableError,
} from "./errors.js";
export { parseEventStream } from "./events.js";
