/**
 * Typed helpers per message type and notification kind: JSON bodies in the
 * mapping of docs/flatbuffers.md, typed by the interfaces generated from
 * `schema/*.fbs` (`RequestJson["lobby.game.create"]`, ...).
 *
 * Table names follow docs/flatbuffers.md: `user.account.get` uses
 * `user.AccountGetRequest` / `user.AccountGetResponse`; notification kind
 * `lobby.invite.received` uses `notification.LobbyInviteReceivedEvent`.
 */
import { decodeTable, encodeTable, type JsonObject } from "./codec.js";
import type { CommandResult, VerifiedEvent } from "./envelope.js";
import { BusinessError, UnknownMessageTypeError } from "./errors.js";
import {
  EVENT_TABLES,
  MESSAGE_TYPES,
  type MessageType,
  NOTIFICATION_KINDS,
  type NotificationKind,
  REQUEST_TABLES,
  RESPONSE_TABLES,
  SERVER_TIME_EVENT_TYPE,
} from "./gen/catalog.js";
import type { EventJson, RequestJson, ResponseJson } from "./gen/json-types.js";

export type { EventJson, RequestJson, ResponseJson };

const MESSAGE_TYPE_SET: ReadonlySet<string> = new Set(MESSAGE_TYPES);
const NOTIFICATION_KIND_SET: ReadonlySet<string> = new Set(NOTIFICATION_KINDS);

export function isMessageType(value: string): value is MessageType {
  return MESSAGE_TYPE_SET.has(value);
}

export function isNotificationKind(value: string): value is NotificationKind {
  return NOTIFICATION_KIND_SET.has(value);
}

function known(messageType: string): MessageType {
  if (!isMessageType(messageType)) throw new UnknownMessageTypeError(messageType);
  return messageType;
}

/** The request table of a message type as FlatBuffers bytes (the `payload_bytes` to sign). */
export function encodeRequest<M extends MessageType>(messageType: M, body: RequestJson[M]): Uint8Array {
  return encodeTable(REQUEST_TABLES[known(messageType)], body);
}

/** Decodes a request payload (what a backend would read); mostly for tests and tools. */
export function decodeRequest<M extends MessageType>(messageType: M, payload: Uint8Array): RequestJson[M] {
  return decodeTable(REQUEST_TABLES[known(messageType)], payload) as RequestJson[M];
}

export function encodeResponse<M extends MessageType>(messageType: M, body: ResponseJson[M]): Uint8Array {
  return encodeTable(RESPONSE_TABLES[known(messageType)], body);
}

/** Decodes an `ok` response payload to the message type's response table. */
export function decodeResponse<M extends MessageType>(messageType: M, payload: Uint8Array): ResponseJson[M] {
  return decodeTable(RESPONSE_TABLES[known(messageType)], payload) as ResponseJson[M];
}

/** `gateway.ErrorResponse`, the payload of every non-`ok` result. */
export function decodeErrorResponse(payload: Uint8Array): { code: string; message: string } {
  const body = decodeTable("gateway.ErrorResponse", payload);
  return { code: String(body["code"] ?? ""), message: String(body["message"] ?? "") };
}

/**
 * The verified result as JSON: the response table for `ok`, else a
 * `BusinessError` carrying the `gateway.ErrorResponse`.
 */
export function decodeResult<M extends MessageType>(messageType: M, result: CommandResult): ResponseJson[M] {
  if (!result.ok) {
    let code = result.resultCode;
    let message = "";
    try {
      ({ code, message } = decodeErrorResponse(result.payload));
    } catch {
      // A verified error result whose payload does not decode still reports its result_code.
    }
    throw new BusinessError(result.resultCode, code || result.resultCode, message);
  }
  return decodeResponse(messageType, result.payload);
}

/** `gateway.ServerTimeEvent.server_time_ms` of the bootstrap event. */
export function decodeServerTime(payload: Uint8Array): bigint {
  const body = decodeTable("gateway.ServerTimeEvent", payload);
  return BigInt(body["server_time_ms"] as number | string);
}

/**
 * The SubscribeEvents `payload_bytes`: a `gateway.SubscribeEventsOptions`
 * asking to resume after `resumePosition`, or empty (start from now) without
 * one, which every push-hub accepts, even one that predates the options.
 */
export function encodeSubscribeOptions(resumePosition?: string): Uint8Array {
  if (!resumePosition) return new Uint8Array(0);
  return encodeTable("gateway.SubscribeEventsOptions", { resume_position: resumePosition });
}

export function encodeEvent<K extends NotificationKind>(kind: K, body: EventJson[K]): Uint8Array {
  return encodeTable(EVENT_TABLES[kind], body);
}

/**
 * A decoded event payload, JSON-ready (64-bit integers as in the JSON mapping):
 * the bootstrap's `gateway.ServerTimeEvent`, a notification table, or the raw
 * bytes of a type this SDK does not know.
 */
export type DecodedEvent =
  | { readonly kind: "server_time"; readonly type: string; readonly body: JsonObject }
  | { readonly kind: "notification"; readonly type: NotificationKind; readonly body: JsonObject }
  | { readonly kind: "unknown"; readonly type: string; readonly payload: Uint8Array };

/**
 * Decodes a verified event's payload. An event type without a table (a
 * newer gateway) is `unknown`, not an error; a known type whose payload does
 * not decode throws `PayloadCodecError`. `position` may be absent, so events
 * stored before it existed still decode.
 */
export function decodeEvent(event: Omit<VerifiedEvent, "position"> & { readonly position?: string }): DecodedEvent {
  if (event.eventType === SERVER_TIME_EVENT_TYPE) {
    return { kind: "server_time", type: event.eventType, body: decodeTable("gateway.ServerTimeEvent", event.payload) };
  }
  if (isNotificationKind(event.eventType)) {
    return { kind: "notification", type: event.eventType, body: decodeTable(EVENT_TABLES[event.eventType], event.payload) };
  }
  return { kind: "unknown", type: event.eventType, payload: event.payload };
}

