/**
 * Errors the SDK raises on purpose. Every one derives from `EdgeClientError`
 * and its `message` is one line that is safe to show to a user.
 *
 * Gateway rejects keep the specification's code and message; the ones a
 * client reacts to differently have their own class (a revoked or unknown
 * session means "log in again", an overflowed stream or a draining gateway
 * means "reconnect", a rate limit means "wait `retryAfterSeconds`", a lost
 * event history means "refetch your state and subscribe from now").
 */
import { Code, ConnectError } from "@connectrpc/connect";

function oneLine(text: string): string {
  return text.split(/\s+/).filter(Boolean).join(" ");
}

export class EdgeClientError extends Error {
  override name = "EdgeClientError";
}

/** The gRPC status names, as the specification and docs/errors.md spell them. */
export const STATUS_NAMES: Readonly<Record<Code, string>> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

/** The public REST surface refused a request, or gave no HTTP answer (`status` 0). */
export class PublicApiError extends EdgeClientError {
  override name = "PublicApiError";
  /** The server's message alone. */
  readonly detail: string;

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds from `Retry-After` on a 429, else undefined. */
    readonly retryAfterSeconds?: number,
  ) {
    const where = status ? `HTTP ${status}` : "no HTTP answer";
    const wait = retryAfterSeconds !== undefined ? ` (retry in ${retryAfterSeconds} s)` : "";
    super(`public API error (${where}) ${code}: ${oneLine(message)}${wait}`);
    this.detail = oneLine(message);
  }
}

/** A call ended with a status other than OK; `code` is Connect's, `codeName` the gRPC name. */
export class GatewayError extends EdgeClientError {
  override name = "GatewayError";

  constructor(
    readonly code: Code,
    /** The server's message, e.g. "device session is revoked". */
    readonly detail: string,
    /** Seconds from a `retry-after` header, when the gateway sent one. */
    readonly retryAfterSeconds?: number,
  ) {
    const wait = retryAfterSeconds !== undefined ? ` (retry in ${retryAfterSeconds} s)` : "";
    super(`gateway error ${STATUS_NAMES[code] ?? code}: ${oneLine(detail)}${wait}`);
  }

  get codeName(): string {
    return STATUS_NAMES[this.code] ?? String(this.code);
  }
}

/** FAILED_PRECONDITION "device session is revoked": log in again. */
export class SessionRevokedError extends GatewayError {
  override name = "SessionRevokedError";
}

/** UNAUTHENTICATED "unknown device session": the session does not exist (any more); log in again. */
export class UnknownSessionError extends GatewayError {
  override name = "UnknownSessionError";
}

/**
 * UNAUTHENTICATED "session lookup rate limit exceeded": too many requests with
 * device sessions the gateway had to look up came from this network address.
 * The session itself may be fine: retry after a while, do not log out.
 */
export class SessionLookupLimitedError extends GatewayError {
  override name = "SessionLookupLimitedError";
}

/** RESOURCE_EXHAUSTED "authenticated request rate limit exceeded". */
export class RateLimitedError extends GatewayError {
  override name = "RateLimitedError";
}

/** RESOURCE_EXHAUSTED "push stream overflowed": the client read too slowly; resubscribe. */
export class StreamOverflowError extends GatewayError {
  override name = "StreamOverflowError";
}

/** UNAVAILABLE "gateway is shutting down": another replica takes the retry. */
export class ShuttingDownError extends GatewayError {
  override name = "ShuttingDownError";
}

/**
 * OUT_OF_RANGE "resume position is older than the event history": the user's
 * event history no longer holds everything after the resume position (it
 * expired, or Redis lost its data), so the events missed since then cannot be
 * delivered. Permanent for that position, and a live stream can end with it
 * too: refetch the state the events would have updated, then subscribe again
 * without a resume position.
 *
 * `events()` also ends with it when a stream opened with a resume position
 * does not start there (a push-hub that predates resume ignores the option):
 * the remedy is the same, and the app must not trust it to have missed nothing.
 */
export class EventHistoryGoneError extends GatewayError {
  override name = "EventHistoryGoneError";
}

/**
 * INVALID_ARGUMENT "subscribe options are malformed": the SubscribeEvents
 * payload, usually a resume position restored from storage, is not one the
 * gateway issued. Permanent: drop the stored position and subscribe without it.
 */
export class InvalidSubscribeOptionsError extends GatewayError {
  override name = "InvalidSubscribeOptionsError";
}

// The specification's messages (docs/errors.md); the class follows code *and* message.
const TYPED: ReadonlyArray<[Code, string, new (c: Code, m: string, r?: number) => GatewayError]> = [
  [Code.FailedPrecondition, "device session is revoked", SessionRevokedError],
  [Code.Unauthenticated, "unknown device session", UnknownSessionError],
  [Code.Unauthenticated, "session lookup rate limit exceeded", SessionLookupLimitedError],
  [Code.ResourceExhausted, "authenticated request rate limit exceeded", RateLimitedError],
  [Code.ResourceExhausted, "push stream overflowed", StreamOverflowError],
  [Code.Unavailable, "gateway is shutting down", ShuttingDownError],
  [Code.OutOfRange, "resume position is older than the event history", EventHistoryGoneError],
  [Code.InvalidArgument, "subscribe options are malformed", InvalidSubscribeOptionsError],
];

/** Parses `Retry-After` (delay-seconds only; an HTTP date is ignored). */
export function parseRetryAfter(value: string | null | undefined): number | undefined {
  if (!value || !/^\s*\d+\s*$/.test(value)) return undefined;
  return Number.parseInt(value, 10);
}

/** The typed error for a Connect error (any protocol: Connect, gRPC, gRPC-Web). */
export function gatewayError(error: ConnectError): GatewayError {
  const retryAfter = parseRetryAfter(error.metadata.get("retry-after"));
  for (const [code, message, Class] of TYPED) {
    if (error.code === code && error.rawMessage === message) {
      return new Class(error.code, error.rawMessage, retryAfter);
    }
  }
  return new GatewayError(error.code, error.rawMessage, retryAfter);
}

/** Anything a transport throws, as an SDK error (aborts stay aborts). */
export function toClientError(error: unknown): unknown {
  if (error instanceof EdgeClientError) return error;
  if (error instanceof ConnectError) return gatewayError(error);
  return error;
}

/** Something the gateway sent failed verification; it is never returned as data. */
export class VerificationError extends EdgeClientError {
  override name = "VerificationError";

  constructor(readonly reason: string) {
    super(oneLine(reason));
  }
}

/** An ExecuteCommandResponse failed verification (signature, hash, request_id, version). */
export class ResponseVerificationError extends VerificationError {
  override name = "ResponseVerificationError";
}

/** A GatewayEvent failed verification, or the stream broke its bootstrap contract. */
export class EventVerificationError extends VerificationError {
  override name = "EventVerificationError";
}

/** A verified response whose result_code is not `ok`; `code` / `detail` come from gateway.ErrorResponse. */
export class BusinessError extends EdgeClientError {
  override name = "BusinessError";

  constructor(
    readonly resultCode: string,
    readonly code: string,
    readonly detail: string,
  ) {
    const label = code === resultCode ? resultCode : `${resultCode} (${code})`;
    super(detail ? `business error ${label}: ${oneLine(detail)}` : `business error ${label}`);
  }
}

/** The message type is not in the v1 catalogue. */
export class UnknownMessageTypeError extends EdgeClientError {
  override name = "UnknownMessageTypeError";

  constructor(readonly messageType: string) {
    super(`unknown message type ${JSON.stringify(messageType)}`);
  }
}

/** A JSON body does not fit its FlatBuffers table (or a payload does not decode as one). */
export class PayloadCodecError extends EdgeClientError {
  override name = "PayloadCodecError";
}
