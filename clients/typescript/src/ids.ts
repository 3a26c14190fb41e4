import { toHex } from "./bytes.js";

/** Request ids: UUIDv4 text, from `crypto.getRandomValues` (which, unlike `randomUUID`, works outside secure contexts). */
export function newRequestId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = toHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The local wall clock in milliseconds since the Unix epoch. */
export function nowMs(): bigint {
  return BigInt(Date.now());
}
