/**
 * Canonical signing inputs of the v1 wire contract (docs/signing.md).
 *
 * Every string and bytes field, the domain marker included, is
 * `uvarint(len) || bytes` (strings as UTF-8); `timestamp_ms` is an 8-byte
 * big-endian unsigned integer. `contracts/signing-vectors-v1.json` pins the
 * exact bytes; the Python reference is `edgecore.signing`.
 */
import { sha256 } from "@noble/hashes/sha2.js";

import { concat, utf8 } from "./bytes.js";

export const REQUEST_DOMAIN = "galaxy-request-v1";
export const RESPONSE_DOMAIN = "galaxy-response-v1";
export const EVENT_DOMAIN = "galaxy-event-v1";
export const PAYLOAD_HASH_SIZE = 32;
export const ED25519_PUBLIC_KEY_SIZE = 32;
export const ED25519_SIGNATURE_SIZE = 64;

const MAX_UINT64 = (1n << 64n) - 1n;

/** A 64-bit timestamp as the SDK accepts it: bigint, or a safe integer number. */
export type Uint64Like = bigint | number;

/** Unsigned LEB128, identical to Go's `binary.PutUvarint` (300 -> ac 02). */
export function encodeUvarint(value: Uint64Like): Uint8Array {
  let v = toUint64(value, "uvarint value");
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

export function toUint64(value: Uint64Like, what = "timestamp_ms"): bigint {
  if (typeof value === "number" && !Number.isSafeInteger(value)) {
    throw new RangeError(`${what} must be an integer (a bigint beyond 2^53)`);
  }
  const v = BigInt(value);
  if (v < 0n || v > MAX_UINT64) throw new RangeError(`${what} must fit an unsigned 64-bit integer`);
  return v;
}

function field(value: string | Uint8Array): Uint8Array {
  const raw = typeof value === "string" ? utf8(value) : value;
  return concat([encodeUvarint(raw.length), raw]);
}

function timestamp(value: Uint64Like): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, toUint64(value), false);
  return out;
}

/** Raw 32-byte SHA-256 of the payload (`sha256("")` for an empty payload). */
export function payloadHash(payload: Uint8Array): Uint8Array {
  return sha256(payload);
}

export interface RequestSigningFields {
  readonly protocolVersion: string;
  readonly deviceSessionId: string;
  readonly messageType: string;
  readonly timestampMs: Uint64Like;
  readonly requestId: string;
  readonly payloadHash: Uint8Array;
}

/** ExecuteCommandRequest and SubscribeEventsRequest; trace_id is deliberately unsigned. */
export function requestSigningInput(f: RequestSigningFields): Uint8Array {
  return concat([
    field(REQUEST_DOMAIN),
    field(f.protocolVersion),
    field(f.deviceSessionId),
    field(f.messageType),
    timestamp(f.timestampMs),
    field(f.requestId),
    field(f.payloadHash),
  ]);
}

export interface ResponseSigningFields {
  readonly protocolVersion: string;
  readonly requestId: string;
  readonly timestampMs: Uint64Like;
  readonly resultCode: string;
  readonly payloadHash: Uint8Array;
}

export function responseSigningInput(f: ResponseSigningFields): Uint8Array {
  return concat([
    field(RESPONSE_DOMAIN),
    field(f.protocolVersion),
    field(f.requestId),
    timestamp(f.timestampMs),
    field(f.resultCode),
    field(f.payloadHash),
  ]);
}

export interface EventSigningFields {
  readonly eventType: string;
  readonly eventId: string;
  readonly timestampMs: Uint64Like;
  readonly requestId: string;
  readonly traceId: string;
  readonly payloadHash: Uint8Array;
}

/** Absent request_id / trace_id are signed as empty strings, as they travel (proto3). */
export function eventSigningInput(f: EventSigningFields): Uint8Array {
  return concat([
    field(EVENT_DOMAIN),
    field(f.eventType),
    field(f.eventId),
    timestamp(f.timestampMs),
    field(f.requestId),
    field(f.traceId),
    field(f.payloadHash),
  ]);
}
