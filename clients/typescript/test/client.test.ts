// EdgeClient and EventSubscription against an in-memory Connect server that
// signs like the gateway (server key of the signing vectors) and checks the
// client's request signatures, as edge-grpc and push-hub do.
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";

import {
  EdgeClient,
  EventVerificationError,
  RateLimitedError,
  ResponseVerificationError,
  SeedDeviceKey,
  SessionRevokedError,
  ShuttingDownError,
  StreamOverflowError,
  UnknownSessionError,
  type VerifiedEvent,
  encodeResponse,
  eventSigningInput,
  fromHex,
  payloadHash,
  requestSigningInput,
  responseSigningInput,
  verifySignature,
  SERVER_TIME_EVENT_TYPE,
  encodeTable,
  decodeRequest,
  type SubscriptionState,
  BusinessError,
} from "../src/index.js";
import { EdgeGateway } from "../src/gen/proto/galaxy/gateway/v1/edge_gateway_pb.js";

const SERVER_SEED = fromHex("63009d99738c95f672d2b5eb54ee6bb70c9b6fb09fe6408f03c8ab8bad43ea53");
const server = await SeedDeviceKey.fromSeed(SERVER_SEED);
const device = await SeedDeviceKey.generate();

interface Signed {
  protocolVersion: string;
  deviceSessionId: string;
  messageType: string;
  timestampMs: bigint;
  requestId: string;
  payloadBytes: Uint8Array;
  payloadHash: Uint8Array;
  signature: Uint8Array;
}

async function checkRequest(req: Signed): Promise<void> {
  const input = requestSigningInput({ ...req, payloadHash: payloadHash(req.payloadBytes) });
  if (!(await verifySignature(device.publicKey, input, req.signature))) {
    throw new ConnectError("invalid request signature", Code.Unauthenticated);
  }
}

async function signedResponse(requestId: string, resultCode: string, payload: Uint8Array) {
  const fields = { protocolVersion: "v1", requestId, timestampMs: 1n, resultCode, payloadHash: payloadHash(payload) };
  return { ...fields, payloadBytes: payload, signature: await server.sign(responseSigningInput(fields)) };
}

async function signedEvent(eventType: string, eventId: string, payload: Uint8Array) {
  const fields = { eventType, eventId, timestampMs: 5n, requestId: "", traceId: "", payloadHash: payloadHash(payload) };
  return { ...fields, payloadBytes: payload, signature: await server.sign(eventSigningInput(fields)) };
}

const serverTime = () => encodeTable("gateway.ServerTimeEvent", { server_time_ms: 5 });

function client(transport: ReturnType<typeof createRouterTransport>): EdgeClient {
  return new EdgeClient({
    commandTransport: transport,
    deviceSessionId: "ds-1",
    deviceKey: device,
    serverPublicKey: server.publicKey,
  });
}

describe("EdgeClient.call", () => {
  it("signs the request, verifies the response and decodes it", async () => {
    const seen: string[] = [];
    const transport = createRouterTransport(({ service }) => {
      service(EdgeGateway, {
        async executeCommand(req) {
          await checkRequest(req);
          seen.push(req.messageType, decodeRequest("user.games.report", req.payloadBytes).game_id as string);
          return signedResponse(req.requestId, "ok", encodeResponse("user.games.report", { game_id: "g-1", turn: 2 }));
        },
        async *subscribeEvents() {},
      });
    });
    const result = await client(transport).call("user.games.report", { game_id: "g-1", turn: 1 });
    expect(result).toMatchObject({ game_id: "g-1", turn: 2 });
    expect(seen).toEqual(["user.games.report", "g-1"]);
  });

  it("refuses a response whose signature does not verify, never returning its data", async () => {
    const transport = createRouterTransport(({ service }) => {
      service(EdgeGateway, {
        async executeCommand(req) {
          const response = await signedResponse(req.requestId, "ok", encodeResponse("user.account.get", {}));
          response.signature[10]! ^= 0xff;
          return response;
        },
        async *subscribeEvents() {},
      });
    });
    await expect(client(transport).call("user.account.get", {})).rejects.toBeInstanceOf(ResponseVerificationError);
  });

  it("refuses a genuine response replayed for another request", async () => {
    const old = await signedResponse("req-old", "ok", encodeResponse("user.account.get", {}));
    const transport = createRouterTransport(({ service }) => {
      service(EdgeGateway, { executeCommand: async () => old, async *subscribeEvents() {} });
    });
    await expect(client(transport).call("user.account.get", {})).rejects.toThrow(/does not answer request/);
  });

  it("turns a verified non-ok result into BusinessError", async () => {
    const transport = createRouterTransport(({ service }) => {
      service(EdgeGateway, {
        executeCommand: async (req) =>
          signedResponse(req.requestId, "game_not_found", encodeTable("gateway.ErrorResponse", { code: "game_not_found", message: "game does not exist" })),
        async *subscribeEvents() {},
      });
    });
    const error = await client(transport).call("lobby.game.open-enrollment", { game_id: "g" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BusinessError);
    expect((error as BusinessError).message).toBe("business error game_not_found: game does not exist");
  });

  it.each([
    [Code.FailedPrecondition, "FAILED_PRECONDITION", "device session is revoked", SessionRevokedError],
    [Code.Unauthenticated, "UNAUTHENTICATED", "unknown device session", UnknownSessionError],
    [Code.ResourceExhausted, "RESOURCE_EXHAUSTED", "authenticated request rate limit exceeded", RateLimitedError],
    [Code.Unavailable, "UNAVAILABLE", "gateway is shutting down", ShuttingDownError],
  ] as const)("maps %i (%s) %j to its typed error", async (code, name, message, Class) => {
    const transport = createRouterTransport(({ service }) => {
      service(EdgeGateway, {
        executeCommand: () => {
          throw new ConnectError(message, code, { "retry-after": "3" });
        },
        async *subscribeEvents() {},
      });
    });
    const error = await client(transport).call("user.account.get", {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Class);
    expect((error as InstanceType<typeof Class>).detail).toBe(message);
    expect((error as InstanceType<typeof Class>).retryAfterSeconds).toBe(3);
    expect((error as Error).message).toBe(`gateway error ${name}: ${message} (retry in 3 s)`);
  });
});

describe("EdgeClient.events", () => {
  it("reconnects after an overflow or a draining gateway with a freshly signed request, until the session is revoked", async () => {
    const openings: string[] = [];
    const transport = createRouterTransport(({ service }) => {
      service(EdgeGateway, {
        async executeCommand() {
          throw new ConnectError("unused", Code.Unimplemented);
        },
        async *subscribeEvents(req) {
          await checkRequest(req);
          openings.push(req.requestId);
          yield await signedEvent(SERVER_TIME_EVENT_TYPE, req.requestId, serverTime());
          if (openings.length === 1) throw new ConnectError("push stream overflowed", Code.ResourceExhausted);
          if (openings.length === 2) throw new ConnectError("gateway is shutting down", Code.Unavailable);
          yield await signedEvent("lobby.invite.received", "evt-1", new Uint8Array(0));
          throw new ConnectError("device session is revoked", Code.FailedPrecondition);
        },
      });
    });
    const events: VerifiedEvent[] = [];
    const states: SubscriptionState[] = [];
    const errors: unknown[] = [];
    const reasons: unknown[] = [];
    const subscription = client(transport).events(
      {
        onEvent: (e) => void events.push(e),
        onStateChange: (s, d) => {
          states.push(s);
          if (s === "reconnecting") reasons.push(d.error);
        },
        onError: (e) => void errors.push(e),
      },
      { initialBackoffMs: 1, random: () => 0.5 },
    );
    await subscription.done;
    expect(new Set(openings).size).toBe(3);
    expect(events.map((e) => e.eventType)).toEqual([SERVER_TIME_EVENT_TYPE, SERVER_TIME_EVENT_TYPE, SERVER_TIME_EVENT_TYPE, "lobby.invite.received"]);
    expect(reasons[0]).toBeInstanceOf(StreamOverflowError);
    expect(reasons[1]).toBeInstanceOf(ShuttingDownError);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(SessionRevokedError);
    expect(states).toEqual(["connecting", "open", "reconnecting", "open", "reconnecting", "open", "closed"]);
  });

  it("stops on an event that fails verification instead of delivering it", async () => {
    const transport = createRouterTransport(({ service }) => {
      service(EdgeGateway, {
        async executeCommand() {
          throw new ConnectError("unused", Code.Unimplemented);
        },
        async *subscribeEvents(req) {
          yield await signedEvent(SERVER_TIME_EVENT_TYPE, req.requestId, serverTime());
          const forged = await signedEvent("lobby.invite.received", "evt-1", new Uint8Array([1]));
          yield { ...forged, eventId: "evt-2" };
        },
      });
    });
    const events: string[] = [];
    const errors: unknown[] = [];
    await client(transport).events({ onEvent: (e) => void events.push(e.eventType), onError: (e) => void errors.push(e) }, { initialBackoffMs: 1 }).done;
    expect(events).toEqual([SERVER_TIME_EVENT_TYPE]);
    expect(errors[0]).toBeInstanceOf(EventVerificationError);
  });

  it("requires the bootstrap event to answer the opening request", async () => {
    const transport = createRouterTransport(({ service }) => {
      service(EdgeGateway, {
        async executeCommand() {
          throw new ConnectError("unused", Code.Unimplemented);
        },
        async *subscribeEvents() {
          yield await signedEvent(SERVER_TIME_EVENT_TYPE, "someone-else", serverTime());
        },
      });
    });
    const stream = client(transport).subscribe();
    await expect(stream.next()).rejects.toThrow(/is not the opening request_id/);
  });

  it("close() stops a pending reconnect", async () => {
    let openings = 0;
    const transport = createRouterTransport(({ service }) => {
      service(EdgeGateway, {
        async executeCommand() {
          throw new ConnectError("unused", Code.Unimplemented);
        },
        // eslint-disable-next-line require-yield
        async *subscribeEvents() {
          openings += 1;
          throw new ConnectError("downstream service is unavailable", Code.Unavailable);
        },
      });
    });
    const states: SubscriptionState[] = [];
    const subscription = client(transport).events(
      { onEvent: () => undefined, onStateChange: (s) => states.push(s) },
      { initialBackoffMs: 60_000, random: () => 0.99 },
    );
    while (!states.includes("reconnecting")) await new Promise((r) => setTimeout(r, 5));
    subscription.close();
    await subscription.done;
    expect(openings).toBe(1);
    expect(states.at(-1)).toBe("closed");
  });
});
