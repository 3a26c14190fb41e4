// EdgeClient and EventSubscription against an in-memory Connect server that
// signs like the gateway (server key of the signing vectors) and checks the
// client's request signatures, as edge-grpc and push-hub do.
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { ByteBuffer } from "flatbuffers";
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
  SessionLookupLimitedError,
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
  EventHistoryGoneError,
  GatewayError,
  HandlerError,
  InvalidSubscribeOptionsError,
  verifyEvent,
} from "../src/index.js";
import { SubscribeEventsOptions } from "../src/gen/fbs/gateway.js";
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

// `position` is outside the signing input, as push-hub signs it (galaxy-event-v1).
async function signedEvent(eventType: string, eventId: string, payload: Uint8Array, position = "") {
  const fields = { eventType, eventId, timestampMs: 5n, requestId: "", traceId: "", payloadHash: payloadHash(payload) };
  return { ...fields, payloadBytes: payload, signature: await server.sign(eventSigningInput(fields)), position };
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
    [Code.Unauthenticated, "UNAUTHENTICATED", "session lookup rate limit exceeded", SessionLookupLimitedError],
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
          if (openings.length === 3) throw new ConnectError("session lookup rate limit exceeded", Code.Unauthenticated);
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
    expect(new Set(openings).size).toBe(4);
    expect(events.map((e) => e.eventType)).toEqual([
      SERVER_TIME_EVENT_TYPE, SERVER_TIME_EVENT_TYPE, SERVER_TIME_EVENT_TYPE, SERVER_TIME_EVENT_TYPE, "lobby.invite.received",
    ]);
    expect(reasons[0]).toBeInstanceOf(StreamOverflowError);
    expect(reasons[1]).toBeInstanceOf(ShuttingDownError);
    expect(reasons[2]).toBeInstanceOf(SessionLookupLimitedError);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(SessionRevokedError);
    expect(states).toEqual(["connecting", "open", "reconnecting", "open", "reconnecting", "open", "reconnecting", "open", "closed"]);
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

/**
 * What push-hub reads from a SubscribeEvents payload, decoded with the
 * flatc-generated binding (not the SDK's JSON codec that encoded it): the
 * resume position, or undefined for an empty payload (start from now).
 */
function resumePositionOf(payload: Uint8Array): string | undefined {
  if (payload.length === 0) return undefined;
  return SubscribeEventsOptions.getRootAsSubscribeEventsOptions(new ByteBuffer(payload)).resumePosition() ?? "";
}

type Opening = { requestId: string; resume: string | undefined };
type Script = (opening: Opening, index: number) => AsyncGenerator<Awaited<ReturnType<typeof signedEvent>>>;

/** A push-hub that checks each opening's signature (payload included) and follows `script` per opening. */
function resumingHub(script: Script) {
  const openings: Opening[] = [];
  const transport = createRouterTransport(({ service }) => {
    service(EdgeGateway, {
      async executeCommand() {
        throw new ConnectError("unused", Code.Unimplemented);
      },
      async *subscribeEvents(req) {
        await checkRequest(req);
        const opening = { requestId: req.requestId, resume: resumePositionOf(req.payloadBytes) };
        openings.push(opening);
        // A subscription that should have ended but keeps reconnecting fails its test fast.
        if (openings.length > 5) throw new ConnectError("device session is revoked", Code.FailedPrecondition);
        yield* script(opening, openings.length - 1);
      },
    });
  });
  return { openings, transport };
}

const bootstrap = (opening: Opening, position: string) => signedEvent(SERVER_TIME_EVENT_TYPE, opening.requestId, serverTime(), position);
const notification = (eventId: string, position: string) => signedEvent("lobby.invite.received", eventId, new Uint8Array(0), position);

function record() {
  const events: VerifiedEvent[] = [];
  const states: SubscriptionState[] = [];
  const reasons: unknown[] = [];
  const errors: unknown[] = [];
  const handlers = {
    onEvent: (e: VerifiedEvent) => void events.push(e),
    onStateChange: (s: SubscriptionState, d: { error?: unknown }) => {
      states.push(s);
      if (s === "reconnecting") reasons.push(d.error);
    },
    onError: (e: unknown) => void errors.push(e),
  };
  return { events, states, reasons, errors, handlers };
}

const fast = { initialBackoffMs: 1, random: () => 0.5 };

describe("EdgeClient.events resume", () => {
  it("resumes every reconnect at the last delivered position, the bootstrap's included", async () => {
    const { openings, transport } = resumingHub(async function* (opening, index) {
      if (index === 0) {
        yield await bootstrap(opening, "ep:1-0");
        throw new ConnectError("gateway is shutting down", Code.Unavailable);
      }
      if (index === 1) {
        yield await bootstrap(opening, opening.resume!);
        yield await notification("evt-1", "ep:2-0");
        yield await notification("evt-2", "ep:3-0");
        throw new ConnectError("push stream overflowed", Code.ResourceExhausted);
      }
      yield await bootstrap(opening, opening.resume!);
      throw new ConnectError("device session is revoked", Code.FailedPrecondition);
    });
    const seen = record();
    const subscription = client(transport).events(seen.handlers, fast);
    expect(subscription.position).toBeUndefined();
    await subscription.done;
    expect(openings.map((o) => o.resume)).toEqual([undefined, "ep:1-0", "ep:3-0"]);
    expect(new Set(openings.map((o) => o.requestId)).size).toBe(3);
    expect(seen.events.map((e) => [e.eventId, e.position])).toEqual([
      [openings[0]!.requestId, "ep:1-0"],
      [openings[1]!.requestId, "ep:1-0"],
      ["evt-1", "ep:2-0"],
      ["evt-2", "ep:3-0"],
      [openings[2]!.requestId, "ep:3-0"],
    ]);
    expect(seen.errors[0]).toBeInstanceOf(SessionRevokedError);
    expect(subscription.position).toBe("ep:3-0");
  });

  it("resumes the first stream at options.resumePosition (e.g. restored after a reload)", async () => {
    const { openings, transport } = resumingHub(async function* (opening) {
      yield await bootstrap(opening, opening.resume ?? "ep:0-0");
      yield await notification("evt-9", "ep:9-0");
      throw new ConnectError("device session is revoked", Code.FailedPrecondition);
    });
    const seen = record();
    const subscription = client(transport).events(seen.handlers, { ...fast, resumePosition: "ep:8-1" });
    expect(subscription.position).toBe("ep:8-1");
    await subscription.done;
    expect(openings.map((o) => o.resume)).toEqual(["ep:8-1"]);
    expect(subscription.position).toBe("ep:9-0");
  });

  it("sends an empty payload without a position, as before resume existed", async () => {
    const payloads: number[] = [];
    const transport = createRouterTransport(({ service }) => {
      service(EdgeGateway, {
        async executeCommand() {
          throw new ConnectError("unused", Code.Unimplemented);
        },
        async *subscribeEvents(req) {
          payloads.push(req.payloadBytes.length);
          yield await signedEvent(SERVER_TIME_EVENT_TYPE, req.requestId, serverTime());
          throw new ConnectError("device session is revoked", Code.FailedPrecondition);
        },
      });
    });
    const subscription = client(transport).events({ onEvent: () => undefined }, { ...fast, resumePosition: "" });
    await subscription.done;
    expect(payloads).toEqual([0]);
    expect(subscription.position).toBeUndefined();
  });

  it.each([
    ["when resuming", 2],
    ["on a live stream", 1],
  ] as const)("ends with EventHistoryGoneError %s, without another attempt", async (_when, expectedOpenings) => {
    const { openings, transport } = resumingHub(async function* (opening, index) {
      if (expectedOpenings === 2 && index === 0) {
        yield await bootstrap(opening, "ep:1-0");
        throw new ConnectError("gateway is shutting down", Code.Unavailable);
      }
      if (opening.resume === undefined) {
        yield await bootstrap(opening, "ep:1-0");
        yield await notification("evt-1", "ep:2-0");
      }
      throw new ConnectError("resume position is older than the event history", Code.OutOfRange);
    });
    const seen = record();
    const subscription = client(transport).events(seen.handlers, fast);
    await subscription.done;
    // Give a wrongly scheduled reconnect the time to happen.
    await new Promise((r) => setTimeout(r, 20));
    expect(openings).toHaveLength(expectedOpenings);
    expect(seen.errors).toHaveLength(1);
    const error = seen.errors[0] as EventHistoryGoneError;
    expect(error).toBeInstanceOf(EventHistoryGoneError);
    expect(error.code).toBe(Code.OutOfRange);
    expect(error.message).toBe("gateway error OUT_OF_RANGE: resume position is older than the event history");
    expect(seen.states.at(-1)).toBe("closed");
    expect(seen.states.filter((s) => s === "reconnecting")).toHaveLength(expectedOpenings - 1);
    expect(subscription.position).toBeUndefined();
  });

  it("ends with EventHistoryGoneError when a resumed stream starts elsewhere (a push-hub without resume)", async () => {
    const { openings, transport } = resumingHub(async function* (opening) {
      yield await bootstrap(opening, "");
      yield await notification("evt-1", "");
    });
    const seen = record();
    await client(transport).events(seen.handlers, { ...fast, resumePosition: "ep:4-0" }).done;
    expect(openings.map((o) => o.resume)).toEqual(["ep:4-0"]);
    expect(seen.events).toEqual([]);
    expect(seen.errors[0]).toBeInstanceOf(EventHistoryGoneError);
    expect((seen.errors[0] as Error).message).toMatch(/did not resume at position "ep:4-0"/);
  });

  it("ends with InvalidSubscribeOptionsError when the gateway refuses the position", async () => {
    const { openings, transport } = resumingHub(async function* () {
      throw new ConnectError("subscribe options are malformed", Code.InvalidArgument);
    });
    const seen = record();
    const subscription = client(transport).events(seen.handlers, { ...fast, resumePosition: "not-a-position" });
    await subscription.done;
    expect(openings).toHaveLength(1);
    expect(seen.errors[0]).toBeInstanceOf(InvalidSubscribeOptionsError);
    expect(subscription.position).toBeUndefined();
  });

  it("retries UNAVAILABLE event history is unavailable, at the same position", async () => {
    const { openings, transport } = resumingHub(async function* (opening, index) {
      if (index === 0) {
        yield await bootstrap(opening, "ep:1-0");
        yield await notification("evt-1", "ep:2-0");
        throw new ConnectError("event history is unavailable", Code.Unavailable);
      }
      if (index === 1) throw new ConnectError("event history is unavailable", Code.Unavailable);
      yield await bootstrap(opening, opening.resume!);
      throw new ConnectError("device session is revoked", Code.FailedPrecondition);
    });
    const seen = record();
    await client(transport).events(seen.handlers, fast).done;
    expect(openings.map((o) => o.resume)).toEqual([undefined, "ep:2-0", "ep:2-0"]);
    expect(seen.reasons).toHaveLength(2);
    for (const reason of seen.reasons) {
      expect(reason).toBeInstanceOf(GatewayError);
      expect(reason).not.toBeInstanceOf(EventHistoryGoneError);
      expect((reason as GatewayError).code).toBe(Code.Unavailable);
      expect((reason as GatewayError).detail).toBe("event history is unavailable");
    }
    expect(seen.states).toEqual(["connecting", "open", "reconnecting", "reconnecting", "open", "closed"]);
    expect(seen.errors[0]).toBeInstanceOf(SessionRevokedError);
  });

  it("does not move the position past an event whose handler failed", async () => {
    const { transport } = resumingHub(async function* (opening) {
      yield await bootstrap(opening, "ep:1-0");
      yield await notification("evt-1", "ep:2-0");
      yield await notification("evt-2", "ep:3-0");
    });
    const errors: unknown[] = [];
    const subscription = client(transport).events(
      {
        onEvent: (e) => {
          if (e.eventId === "evt-2") throw new Error("storage is full");
        },
        onError: (e) => void errors.push(e),
      },
      fast,
    );
    await subscription.done;
    expect(errors[0]).toBeInstanceOf(HandlerError);
    expect(subscription.position).toBe("ep:2-0");
  });

  it("hands the unsigned position over without letting it touch verification", async () => {
    const wire = await notification("evt-1", "ep:5-0");
    expect((await verifyEvent(wire, server.publicKey)).position).toBe("ep:5-0");
    expect((await verifyEvent({ ...wire, position: "ep:6-0" }, server.publicKey)).position).toBe("ep:6-0");
    const { position: _omitted, ...withoutPosition } = wire;
    expect((await verifyEvent(withoutPosition, server.publicKey)).position).toBe("");
  });
});
