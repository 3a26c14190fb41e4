/**
 * Signed request envelopes and verified responses and events. Pure: no I/O,
 * so `contracts/signing-vectors-v1.json` checks it byte for byte.
 */
import { bytesEqual } from "./bytes.js";
import { EventVerificationError, ResponseVerificationError } from "./errors.js";
import { PROTOCOL_VERSION } from "./gen/catalog.js";
import type { DeviceKey } from "./keys.js";
import { verifySignature } from "./keys.js";
import {
  PAYLOAD_HASH_SIZE,
  eventSigningInput,
  payloadHash,
  requestSigningInput,
  responseSigningInput,
  toUint64,
  type Uint64Like,
} from "./signing.js";

/** The fields shared by ExecuteCommandRequest and SubscribeEventsRequest (trace_id aside). */
export interface SignedRequest {
  readonly protocolVersion: string;
  readonly deviceSessionId: string;
  readonly messageType: string;
  readonly timestampMs: bigint;
  readonly requestId: string;
  readonly payloadBytes: Uint8Array;
  readonly payloadHash: Uint8Array;
  readonly signature: Uint8Array;
}

export interface RequestToSign {
  readonly deviceSessionId: string;
  readonly messageType: string;
  readonly timestampMs: Uint64Like;
  readonly requestId: string;
  readonly payload: Uint8Array;
  readonly protocolVersion?: string;
}

export async function signRequest(key: DeviceKey, r: RequestToSign): Promise<SignedRequest> {
  const protocolVersion = r.protocolVersion ?? PROTOCOL_VERSION;
  const digest = payloadHash(r.payload);
  const timestampMs = toUint64(r.timestampMs);
  const input = requestSigningInput({
    protocolVersion,
    deviceSessionId: r.deviceSessionId,
    messageType: r.messageType,
    timestampMs,
    requestId: r.requestId,
    payloadHash: digest,
  });
  return {
    protocolVersion,
    deviceSessionId: r.deviceSessionId,
    messageType: r.messageType,
    timestampMs,
    requestId: r.requestId,
    payloadBytes: r.payload,
    payloadHash: digest,
    signature: await key.sign(input),
  };
}

/** A verified ExecuteCommandResponse. */
export interface CommandResult {
  readonly resultCode: string;
  readonly payload: Uint8Array;
  readonly requestId: string;
  readonly timestampMs: bigint;
  readonly ok: boolean;
}

/** A verified GatewayEvent. */
export interface VerifiedEvent {
  readonly eventType: string;
  readonly eventId: string;
  readonly timestampMs: bigint;
  readonly payload: Uint8Array;
  readonly requestId: string;
  readonly traceId: string;
  /**
   * Opaque text naming the event's place in the user's event history (the
   * bootstrap's is where its stream starts); `""` when the gateway sent none.
   * Hand it back as `resumePosition` to get what came after it. Not covered
   * by the signature (galaxy-event-v1 predates it): a relay that altered it
   * could make a resumed stream start elsewhere, never forge an event.
   */
  readonly position: string;
}

/** The wire fields of an ExecuteCommandResponse (the generated message has them). */
export interface ResponseFields {
  readonly protocolVersion: string;
  readonly requestId: string;
  readonly timestampMs: bigint;
  readonly resultCode: string;
  readonly payloadBytes: Uint8Array;
  readonly payloadHash: Uint8Array;
  readonly signature: Uint8Array;
}

/** The wire fields of a GatewayEvent. */
export interface EventFields {
  readonly eventType: string;
  readonly eventId: string;
  readonly timestampMs: bigint;
  readonly payloadBytes: Uint8Array;
  readonly payloadHash: Uint8Array;
  readonly signature: Uint8Array;
  readonly requestId: string;
  readonly traceId: string;
  /** Absent in messages built before the field existed (the signing vectors). */
  readonly position?: string;
}

function hashProblem(payload: Uint8Array, claimed: Uint8Array): string | undefined {
  if (claimed.length !== PAYLOAD_HASH_SIZE) return "payload_hash is not a 32-byte SHA-256 digest";
  if (!bytesEqual(payloadHash(payload), claimed)) return "payload_hash does not match payload_bytes";
  return undefined;
}

// int64 on the wire, unsigned 64-bit in the signing input (docs/signing.md).
const unsigned = (value: bigint) => BigInt.asUintN(64, value);

/**
 * Verifies a response against the pinned server key: protocol_version, that
 * it answers `expectedRequestId`, the payload hash and the Ed25519 signature.
 */
export async function verifyResponse(
  response: ResponseFields,
  expectedRequestId: string,
  serverPublicKey: Uint8Array,
): Promise<CommandResult> {
  const fail = (reason: string) => new ResponseVerificationError(`response failed verification: ${reason}`);
  if (response.protocolVersion !== PROTOCOL_VERSION) {
    throw fail(`protocol_version is ${JSON.stringify(response.protocolVersion)}, expected "${PROTOCOL_VERSION}"`);
  }
  if (response.requestId !== expectedRequestId) {
    throw fail(`request_id ${JSON.stringify(response.requestId)} does not answer request ${JSON.stringify(expectedRequestId)}`);
  }
  const problem = hashProblem(response.payloadBytes, response.payloadHash);
  if (problem) throw fail(problem);
  const input = responseSigningInput({
    protocolVersion: response.protocolVersion,
    requestId: response.requestId,
    timestampMs: unsigned(response.timestampMs),
    resultCode: response.resultCode,
    payloadHash: response.payloadHash,
  });
  if (!(await verifySignature(serverPublicKey, input, response.signature))) {
    throw fail("signature is not valid under the server public key");
  }
  if (!response.resultCode) throw fail("result_code is empty");
  return {
    resultCode: response.resultCode,
    payload: response.payloadBytes,
    requestId: response.requestId,
    timestampMs: response.timestampMs,
    ok: response.resultCode === "ok",
  };
}

/** Verifies an event: payload hash and the signature over the canonical event input. */
export async function verifyEvent(event: EventFields, serverPublicKey: Uint8Array): Promise<VerifiedEvent> {
  const label = event.eventType || "<no type>";
  const fail = (reason: string) => new EventVerificationError(`event ${label} failed verification: ${reason}`);
  if (!event.eventType) throw fail("event_type is empty");
  if (!event.eventId) throw fail("event_id is empty");
  const problem = hashProblem(event.payloadBytes, event.payloadHash);
  if (problem) throw fail(problem);
  const input = eventSigningInput({
    eventType: event.eventType,
    eventId: event.eventId,
    timestampMs: unsigned(event.timestampMs),
    requestId: event.requestId,
    traceId: event.traceId,
    payloadHash: event.payloadHash,
  });
  if (!(await verifySignature(serverPublicKey, input, event.signature))) {
    throw fail("signature is not valid under the server public key");
  }
  return {
    eventType: event.eventType,
    eventId: event.eventId,
    timestampMs: event.timestampMs,
    payload: event.payloadBytes,
    requestId: event.requestId,
    traceId: event.traceId,
    position: event.position ?? "",
  };
}

