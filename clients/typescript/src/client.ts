/**
 * The authenticated edge: signed `ExecuteCommand` calls (edge-grpc) and the
 * `SubscribeEvents` stream (push-hub), over any Connect transport: Connect,
 * gRPC or gRPC-Web, from `./web` in browsers or `./node` in Node.
 *
 * Every response and event is verified against the pinned server key before
 * the caller sees it; nothing that fails verification is returned as data.
 */
import { Code, createClient, type Client, type Transport } from "@connectrpc/connect";

import type { DeviceSession } from "./auth.js";
import { type CommandResult, type VerifiedEvent, signRequest, verifyEvent, verifyResponse } from "./envelope.js";
import { EventHistoryGoneError, EventVerificationError, toClientError } from "./errors.js";
import { type MessageType, SERVER_TIME_EVENT_TYPE, SUBSCRIBE_EVENTS_MESSAGE_TYPE } from "./gen/catalog.js";
import { EdgeGateway } from "./gen/proto/galaxy/gateway/v1/edge_gateway_pb.js";
import { newRequestId, nowMs } from "./ids.js";
import { type DeviceKey, parseServerPublicKey } from "./keys.js";
import {
  type RequestJson,
  type ResponseJson,
  decodeResult,
  decodeServerTime,
  encodeRequest,
  encodeSubscribeOptions,
} from "./messages.js";
import { ED25519_PUBLIC_KEY_SIZE } from "./signing.js";
import { EventSubscription, type SubscriptionHandlers, type SubscriptionOptions } from "./subscription.js";

export const DEFAULT_CALL_TIMEOUT_MS = 10_000;

export interface EdgeClientOptions {
  /** Transport to edge-grpc (ExecuteCommand). */
  readonly commandTransport: Transport;
  /** Transport to push-hub (SubscribeEvents); defaults to `commandTransport` (one ingress routing by method). */
  readonly eventsTransport?: Transport;
  readonly deviceSessionId: string;
  readonly deviceKey: DeviceKey;
  /** The gateway's response-signer public key: raw 32 bytes, or text `parseServerPublicKey` accepts. */
  readonly serverPublicKey: Uint8Array | string;
  /** Deadline of one ExecuteCommand call (default 10 s). */
  readonly timeoutMs?: number;
  /** Milliseconds since the Unix epoch, for `timestamp_ms` (default: `Date.now()`). */
  readonly clock?: () => bigint;
}

export interface CallOptions {
  readonly requestId?: string;
  readonly traceId?: string;
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
}

export interface SubscribeOptions extends CallOptions {
  /**
   * The `position` of the last event received on an earlier stream: the new
   * stream delivers everything the user was sent after it, then goes live.
   * Absent or `""`: start from now.
   */
  readonly resumePosition?: string;
}

export class EdgeClient {
  readonly deviceSessionId: string;
  private readonly key: DeviceKey;
  private readonly serverKey: Uint8Array;
  private readonly timeoutMs: number;
  private readonly clock: () => bigint;
  private readonly commands: Client<typeof EdgeGateway>;
  private readonly stream: Client<typeof EdgeGateway>;

  constructor(options: EdgeClientOptions) {
    if (!options.deviceSessionId) throw new Error("deviceSessionId is required");
    const serverKey =
      typeof options.serverPublicKey === "string"
        ? parseServerPublicKey(options.serverPublicKey)
        : Uint8Array.from(options.serverPublicKey);
    if (serverKey.length !== ED25519_PUBLIC_KEY_SIZE) {
      throw new Error("serverPublicKey must be the raw 32-byte Ed25519 public key");
    }
    this.deviceSessionId = options.deviceSessionId;
    this.key = options.deviceKey;
    this.serverKey = serverKey;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.clock = options.clock ?? nowMs;
    this.commands = createClient(EdgeGateway, options.commandTransport);
    this.stream = createClient(EdgeGateway, options.eventsTransport ?? options.commandTransport);
  }

  static forSession(session: DeviceSession, options: Omit<EdgeClientOptions, "deviceSessionId" | "deviceKey">): EdgeClient {
    return new EdgeClient({ ...options, deviceSessionId: session.deviceSessionId, deviceKey: session.deviceKey });
  }

  /**
   * Signs and sends one command; returns the verified result. A non-`ok`
   * result_code is data here (`call` turns it into `BusinessError`); a status
   * is a `GatewayError` (typed subclasses for revoked/unknown sessions and
   * rate limits); a response that fails verification is a
   * `ResponseVerificationError`.
   */
  async execute(messageType: string, payload: Uint8Array, options: CallOptions = {}): Promise<CommandResult> {
    if (!messageType) throw new Error("messageType is required");
    const requestId = options.requestId ?? newRequestId();
    if (!requestId) throw new Error("requestId must not be empty");
    const signed = await signRequest(this.key, {
      deviceSessionId: this.deviceSessionId,
      messageType,
      timestampMs: this.clock(),
      requestId,
      payload,
    });
    let response;
    try {
      response = await this.commands.executeCommand(
        { ...signed, traceId: options.traceId ?? "" },
        { signal: options.signal, timeoutMs: options.timeoutMs ?? this.timeoutMs },
      );
    } catch (error) {
      throw toClientError(error);
    }
    return verifyResponse(response, requestId, this.serverKey);
  }

  /** JSON in, JSON out: encode the request table, execute, verify, decode (BusinessError when not `ok`). */
  async call<M extends MessageType>(messageType: M, body: RequestJson[M], options: CallOptions = {}): Promise<ResponseJson[M]> {
    const result = await this.execute(messageType, encodeRequest(messageType, body), options);
    return decodeResult(messageType, result);
  }

  /**
   * Opens one SubscribeEvents stream and yields verified events, the
   * `gateway.server_time` bootstrap first (its event_id must be the opening
   * request_id). With `resumePosition` the stream first replays what the
   * user was sent after that position, and its bootstrap must carry that very
   * position. Ends with a typed error when the gateway closes the stream
   * with a status (`EventHistoryGoneError` when it cannot resume there);
   * `signal` (or leaving the loop) cancels it. For a stream that survives
   * restarts and network blips use `events()`.
   */
  async *subscribe(options: SubscribeOptions = {}): AsyncGenerator<VerifiedEvent, void, undefined> {
    const requestId = options.requestId ?? newRequestId();
    if (!requestId) throw new Error("requestId must not be empty");
    const resumePosition = options.resumePosition || undefined;
    const signed = await signRequest(this.key, {
      deviceSessionId: this.deviceSessionId,
      messageType: SUBSCRIBE_EVENTS_MESSAGE_TYPE,
      timestampMs: this.clock(),
      requestId,
      payload: encodeSubscribeOptions(resumePosition),
    });
    let bootstrapped = false;
    try {
      for await (const raw of this.stream.subscribeEvents({ ...signed, traceId: options.traceId ?? "" }, { signal: options.signal })) {
        const event = await verifyEvent(raw, this.serverKey);
        if (!bootstrapped) {
          checkBootstrap(event, requestId);
          checkResumed(event, resumePosition);
          bootstrapped = true;
        }
        yield event;
      }
    } catch (error) {
      throw toClientError(error);
    }
    if (!bootstrapped && !options.signal?.aborted) {
      throw new EventVerificationError("stream closed before the gateway.server_time bootstrap event");
    }
  }

  /**
   * A SubscribeEvents stream that reconnects with capped, jittered
   * exponential backoff, re-signing a fresh opening request each time, and
   * resumes each new stream at the `position` of the last event delivered,
   * so nothing sent in between is lost. `options.resumePosition` (e.g. a
   * `subscription.position` saved before a page reload) resumes the first
   * stream too. It stops for good on what a reconnect cannot fix (a revoked
   * or unknown session, a verification failure, an `EventHistoryGoneError`)
   * and reports it to `onError`.
   */
  events(handlers: SubscriptionHandlers, options: SubscriptionOptions = {}): EventSubscription {
    return new EventSubscription(
      (signal, resumePosition) => this.subscribe({ signal, resumePosition }),
      handlers,
      options,
    );
  }
}

function checkBootstrap(event: VerifiedEvent, requestId: string): void {
  if (event.eventType !== SERVER_TIME_EVENT_TYPE) {
    throw new EventVerificationError(`first event is ${JSON.stringify(event.eventType)}, expected "${SERVER_TIME_EVENT_TYPE}"`);
  }
  if (event.eventId !== requestId) {
    throw new EventVerificationError(`bootstrap event_id ${JSON.stringify(event.eventId)} is not the opening request_id ${JSON.stringify(requestId)}`);
  }
  try {
    decodeServerTime(event.payload);
  } catch {
    throw new EventVerificationError("bootstrap payload is not a gateway.ServerTimeEvent");
  }
}

/**
 * A resumed stream must start at the position asked for. One that starts
 * elsewhere (a push-hub that predates resume ignores the options and sends no
 * position) has skipped events without a word, which is the case
 * `EventHistoryGoneError` tells the app to repair: refetch, subscribe anew.
 */
function checkResumed(event: VerifiedEvent, resumePosition: string | undefined): void {
  if (resumePosition !== undefined && event.position !== resumePosition) {
    throw new EventHistoryGoneError(
      Code.OutOfRange,
      `stream did not resume at position ${JSON.stringify(resumePosition)} (bootstrap position ${JSON.stringify(event.position)})`,
    );
  }
}
