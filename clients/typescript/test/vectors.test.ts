// The SDK builds, signs and verifies exactly as contracts/signing-vectors-v1.json pins.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

import {
  ResponseVerificationError,
  EventVerificationError,
  SeedDeviceKey,
  decodeErrorResponse,
  decodeEvent,
  decodeResponse,
  decodeServerTime,
  eventSigningInput,
  fromHex,
  parseServerPublicKey,
  payloadHash,
  requestSigningInput,
  responseSigningInput,
  signRequest,
  toHex,
  verifyEvent,
  verifyResponse,
  verifySignature,
  encodeUvarint,
} from "../src/index.js";

interface Case {
  name: string;
  fields: Record<string, string>;
  payload_hex: string;
  payload_hash_hex: string;
  signing_input_hex: string;
  signature_hex: string;
}
interface Key {
  seed_hex: string;
  public_key_hex: string;
  public_key_base64: string;
}

const vectors = JSON.parse(
  readFileSync(fileURLToPath(new URL("../../../contracts/signing-vectors-v1.json", import.meta.url)), "utf-8"),
) as { client_key: Key; server_key: Key; requests: Case[]; responses: Case[]; events: Case[] };

const serverKey = fromHex(vectors.server_key.public_key_hex);

describe("signing vectors", () => {
  it("stores every 64-bit integer as a decimal string", () => {
    for (const c of [...vectors.requests, ...vectors.responses, ...vectors.events]) {
      expect(typeof c.fields["timestamp_ms"]).toBe("string");
    }
  });

  it.each([
    ["client", vectors.client_key],
    ["server", vectors.server_key],
  ])("derives the %s public key from its seed", async (_name, key) => {
    const derived = await SeedDeviceKey.fromSeed(fromHex(key.seed_hex));
    expect(toHex(derived.publicKey)).toBe(key.public_key_hex);
    expect(parseServerPublicKey(key.public_key_base64)).toEqual(derived.publicKey);
    expect(parseServerPublicKey(key.public_key_hex)).toEqual(derived.publicKey);
  });

  it.each(vectors.requests.map((c) => [c.name, c] as const))("request %s", async (_name, c) => {
    const payload = fromHex(c.payload_hex);
    expect(toHex(payloadHash(payload))).toBe(c.payload_hash_hex);
    const f = c.fields;
    const input = requestSigningInput({
      protocolVersion: f["protocol_version"]!,
      deviceSessionId: f["device_session_id"]!,
      messageType: f["message_type"]!,
      timestampMs: BigInt(f["timestamp_ms"]!),
      requestId: f["request_id"]!,
      payloadHash: payloadHash(payload),
    });
    expect(toHex(input)).toBe(c.signing_input_hex);
    const key = await SeedDeviceKey.fromSeed(fromHex(vectors.client_key.seed_hex));
    const signed = await signRequest(key, {
      deviceSessionId: f["device_session_id"]!,
      messageType: f["message_type"]!,
      timestampMs: BigInt(f["timestamp_ms"]!),
      requestId: f["request_id"]!,
      payload,
      protocolVersion: f["protocol_version"]!,
    });
    expect(toHex(signed.signature)).toBe(c.signature_hex);
    expect(await verifySignature(key.publicKey, input, signed.signature)).toBe(true);
  });

  it.each(vectors.responses.map((c) => [c.name, c] as const))("response %s", async (_name, c) => {
    const f = c.fields;
    const timestampMs = BigInt(f["timestamp_ms"]!);
    const fields = {
      protocolVersion: f["protocol_version"]!,
      requestId: f["request_id"]!,
      timestampMs,
      resultCode: f["result_code"]!,
      payloadHash: fromHex(c.payload_hash_hex),
    };
    expect(toHex(responseSigningInput(fields))).toBe(c.signing_input_hex);
    // On the wire timestamp_ms is an int64: 2^64-1 travels as -1 and is signed as unsigned.
    const wire = { ...fields, timestampMs: BigInt.asIntN(64, timestampMs), payloadBytes: fromHex(c.payload_hex), signature: fromHex(c.signature_hex) };
    const result = await verifyResponse(wire, f["request_id"]!, serverKey);
    expect(result.resultCode).toBe(f["result_code"]);
    expect(result.ok).toBe(f["result_code"] === "ok");
    // Every single flipped bit of the signature, payload or hash is refused.
    for (const key of ["signature", "payloadBytes", "payloadHash"] as const) {
      const forged = Uint8Array.from(wire[key]);
      forged[forged.length - 1]! ^= 0x01;
      await expect(verifyResponse({ ...wire, [key]: forged }, f["request_id"]!, serverKey)).rejects.toBeInstanceOf(ResponseVerificationError);
    }
    await expect(verifyResponse({ ...wire, resultCode: "forged" }, f["request_id"]!, serverKey)).rejects.toThrow(/signature is not valid/);
    await expect(verifyResponse(wire, "another-request", serverKey)).rejects.toThrow(/does not answer request/);
    await expect(verifyResponse({ ...wire, protocolVersion: "v2" }, f["request_id"]!, serverKey)).rejects.toThrow(/protocol_version/);
    const otherKey = await SeedDeviceKey.fromSeed(fromHex(vectors.client_key.seed_hex));
    await expect(verifyResponse(wire, f["request_id"]!, otherKey.publicKey)).rejects.toThrow(/signature is not valid/);
  });

  it.each(vectors.events.map((c) => [c.name, c] as const))("event %s", async (_name, c) => {
    const f = c.fields;
    const fields = {
      eventType: f["event_type"]!,
      eventId: f["event_id"]!,
      timestampMs: BigInt(f["timestamp_ms"]!),
      requestId: f["request_id"]!,
      traceId: f["trace_id"]!,
      payloadHash: fromHex(c.payload_hash_hex),
    };
    expect(toHex(eventSigningInput(fields))).toBe(c.signing_input_hex);
    const wire = { ...fields, payloadBytes: fromHex(c.payload_hex), signature: fromHex(c.signature_hex) };
    const event = await verifyEvent(wire, serverKey);
    expect(event.eventType).toBe(f["event_type"]);
    await expect(verifyEvent({ ...wire, traceId: "x" }, serverKey)).rejects.toBeInstanceOf(EventVerificationError);
    await expect(verifyEvent({ ...wire, timestampMs: wire.timestampMs + 1n }, serverKey)).rejects.toBeInstanceOf(EventVerificationError);
  });

  it.each(["webcrypto", "noble"] as const)("%s verification accepts every vector and refuses every flipped bit", async (engine) => {
    const cases = [
      ...vectors.requests.map((c) => [c, fromHex(vectors.client_key.public_key_hex)] as const),
      ...[...vectors.responses, ...vectors.events].map((c) => [c, serverKey] as const),
    ];
    for (const [c, key] of cases) {
      const input = fromHex(c.signing_input_hex);
      const signature = fromHex(c.signature_hex);
      expect(await verifySignature(key, input, signature, { engine })).toBe(true);
      for (const bit of [0, 7, 255, 511]) {
        const forged = Uint8Array.from(signature);
        forged[bit >> 3]! ^= 1 << (bit & 7);
        expect(await verifySignature(key, input, forged, { engine })).toBe(false);
      }
      const other = Uint8Array.from(input);
      other[other.length - 1]! ^= 0x80;
      expect(await verifySignature(key, other, signature, { engine })).toBe(false);
    }
    expect(await verifySignature(serverKey, new Uint8Array(1), new Uint8Array(63), { engine })).toBe(false);
  });

  it("decodes the payloads Python encoded", () => {
    const byName = (list: Case[], name: string) => list.find((c) => c.name === name)!;
    expect(decodeResponse("user.account.get", fromHex(byName(vectors.responses, "ok").payload_hex))).toMatchObject({
      account: { user_id: "u-1", display_name: "Ada" },
    });
    expect(decodeErrorResponse(fromHex(byName(vectors.responses, "business_error").payload_hex))).toEqual({
      code: "game_not_found",
      message: "game does not exist",
    });
    const bootstrap = byName(vectors.events, "server_time_bootstrap");
    expect(decodeServerTime(fromHex(bootstrap.payload_hex))).toBe(BigInt(bootstrap.fields["timestamp_ms"]!));
    const event = { eventType: "gateway.server_time", eventId: "e", timestampMs: 0n, payload: fromHex(bootstrap.payload_hex), requestId: "", traceId: "" };
    expect(decodeEvent(event)).toEqual({
      kind: "server_time",
      type: "gateway.server_time",
      body: { server_time_ms: Number(bootstrap.fields["timestamp_ms"]) },
    });
  });

  it("encodes uvarints like Go's binary.PutUvarint", () => {
    expect(toHex(encodeUvarint(300))).toBe("ac02");
    expect(toHex(encodeUvarint((1n << 64n) - 1n))).toBe("ffffffffffffffffff01");
    expect(() => encodeUvarint(-1)).toThrow(RangeError);
    expect(() => encodeUvarint(1n << 64n)).toThrow(RangeError);
  });
});
