// The JSON mapping round-trips every table, agrees with flatc's generated
// bindings in both directions, and refuses bad input with a clear error.
import { Builder, ByteBuffer } from "flatbuffers";
import { describe, expect, it } from "vitest";

import {
  EVENT_TABLES,
  MESSAGE_TYPES,
  NOTIFICATION_KINDS,
  PayloadCodecError,
  REQUEST_TABLES,
  RESPONSE_TABLES,
  UnknownMessageTypeError,
  decodeEvent,
  decodeRequest,
  decodeResponse,
  decodeTable,
  encodeEvent,
  encodeRequest,
  encodeResponse,
  encodeTable,
  type JsonObject,
} from "../src/index.js";
import * as fbs from "../src/gen/fbs/index.js";
import { ENUMS, type FieldSchema, TABLES } from "../src/gen/schema.js";

const BEYOND_2_53 = "9007199254740993";

/** A value for every field, none of them the default, so decode gives back exactly the input. */
function sample(table: string, depth = 0): JsonObject {
  const out: JsonObject = {};
  for (const f of TABLES[table]!.fields) {
    if (f.deprecated) continue;
    if ((f.type === "table" || f.element === "table") && depth > 3) continue;
    out[f.name] =
      f.type === "vector" ? [one(f, f.element!, depth), one(f, f.element!, depth)] : one(f, f.type, depth);
  }
  return out;
}

function one(f: FieldSchema, type: string, depth: number): JsonObject[string] {
  if (f.enum) {
    const names = Object.keys(ENUMS[f.enum]!.values);
    return names[names.length - 1]!;
  }
  switch (type) {
    case "bool":
      return f.default !== true;
    case "string":
      return `s-${f.name}-ünï`;
    case "table":
      return sample(f.table!, depth + 1);
    case "long":
      return BEYOND_2_53;
    case "ulong":
      return "18446744073709551615";
    case "float":
    case "double":
      return 1.5;
    default:
      return Number(f.default ?? 0) === 7 ? 8 : 7;
  }
}

function flatcClass(table: string): { name: string; cls: Record<string, unknown> } {
  const [ns, name] = table.split(".") as [string, string];
  const cls = (fbs as unknown as Record<string, Record<string, Record<string, unknown>>>)[ns]![name]!;
  return { name, cls };
}

/** Decode with flatc's bindings (object API), re-encode with them, return the bytes. */
function throughFlatc(table: string, bytes: Uint8Array): Uint8Array {
  const { name, cls } = flatcClass(table);
  const root = (cls[`getRootAs${name}`] as (bb: ByteBuffer) => { unpack(): { pack(b: Builder): number } })(new ByteBuffer(bytes));
  const builder = new Builder(256);
  builder.finish(root.unpack().pack(builder));
  return builder.asUint8Array();
}

describe("JSON codec", () => {
  it("knows the 18 message types and the 13 notification kinds", () => {
    expect(MESSAGE_TYPES).toHaveLength(18);
    expect(NOTIFICATION_KINDS).toHaveLength(13);
  });

  const tables = Object.keys(TABLES).sort();
  it.each(tables)("%s round-trips, and flatc's bindings read and write the same data", (table) => {
    const body = sample(table);
    const bytes = encodeTable(table, body);
    expect(decodeTable(table, bytes)).toEqual(body);
    expect(decodeTable(table, throughFlatc(table, bytes))).toEqual(body);
  });

  it.each(MESSAGE_TYPES.map((t) => [t]))("typed helpers of %s", (type) => {
    const request = sample(REQUEST_TABLES[type]);
    expect(decodeRequest(type, encodeRequest(type, request as never))).toEqual(request);
    const response = sample(RESPONSE_TABLES[type]);
    expect(decodeResponse(type, encodeResponse(type, response as never))).toEqual(response);
  });

  it.each(NOTIFICATION_KINDS.map((k) => [k]))("event %s decodes to its notification table", (kind) => {
    const body = sample(EVENT_TABLES[kind]);
    const payload = encodeEvent(kind, body as never);
    const decoded = decodeEvent({ eventType: kind, eventId: "e-1", timestampMs: 1n, payload, requestId: "", traceId: "" });
    expect(decoded).toEqual({ kind: "notification", type: kind, body });
  });

  it("leaves an event type without a table as unknown", () => {
    const payload = new Uint8Array([1, 2, 3]);
    expect(decodeEvent({ eventType: "lobby.future.kind", eventId: "e", timestampMs: 0n, payload, requestId: "", traceId: "" })).toEqual({
      kind: "unknown",
      type: "lobby.future.kind",
      payload,
    });
  });

  it("emits plain scalars with their defaults and leaves absent strings out", () => {
    const table = tables.find((t) => TABLES[t]!.fields.some((f) => f.type === "int" && !f.optional && !f.enum))!;
    const decoded = decodeTable(table, encodeTable(table, {}));
    for (const f of TABLES[table]!.fields) {
      if (f.deprecated) continue;
      if (f.type === "string" || f.type === "table" || f.type === "vector" || f.optional) expect(decoded).not.toHaveProperty(f.name);
      else expect(decoded).toHaveProperty(f.name);
    }
  });

  it("accepts 64-bit integers as numbers, bigints and decimal strings", () => {
    const table = tables.find((t) => TABLES[t]!.fields.some((f) => f.type === "long"))!;
    const field = TABLES[table]!.fields.find((f) => f.type === "long")!.name;
    for (const v of [42, 42n, "42"]) expect(decodeTable(table, encodeTable(table, { [field]: v }))[field]).toBe(42);
    expect(decodeTable(table, encodeTable(table, { [field]: BEYOND_2_53 }))[field]).toBe(BEYOND_2_53);
    expect(() => encodeTable(table, { [field]: 2 ** 60 })).toThrow(/decimal strings/);
  });

  it.each([
    [{ nope: 1 }, /unknown field "nope"/],
    [{ game_id: 5 }, /\.game_id: expected string/],
    [{ turn: "three" }, /\.turn: expected integer/],
    [{ turn: 2 ** 40 }, /out of range for int/],
    [{ turn: 1.5 }, /expected integer/],
  ])("refuses %j with a clear error", (body, message) => {
    expect(() => encodeRequest("user.games.report", body as never)).toThrow(PayloadCodecError);
    expect(() => encodeRequest("user.games.report", body as never)).toThrow(message);
  });

  it("refuses an unknown enum name and a boolean given as 0/1", () => {
    const enumField = Object.entries(TABLES).flatMap(([t, s]) => s.fields.filter((f) => f.enum && f.type !== "vector").map((f) => [t, f.name] as const))[0]!;
    expect(() => encodeTable(enumField[0], { [enumField[1]]: "NoSuchValue" })).toThrow(/unknown .* value "NoSuchValue"/);
    const boolField = Object.entries(TABLES).flatMap(([t, s]) => s.fields.filter((f) => f.type === "bool" && !f.deprecated).map((f) => [t, f.name] as const))[0]!;
    expect(() => encodeTable(boolField[0], { [boolField[1]]: 1 })).toThrow(/expected boolean/);
  });

  it("refuses an unknown message type", () => {
    expect(() => encodeRequest("user.nothing.here" as never, {} as never)).toThrow(UnknownMessageTypeError);
  });

  it("reports truncated or garbage buffers as codec errors, never crashes", () => {
    const table = "user.GamesReportRequest";
    const bytes = encodeTable(table, { game_id: "g-1", turn: 3 });
    for (let n = 0; n < bytes.length; n++) {
      try {
        decodeTable(table, bytes.subarray(0, n));
      } catch (error) {
        expect(error).toBeInstanceOf(PayloadCodecError);
      }
    }
    let seed = 1;
    for (let i = 0; i < 2000; i++) {
      const garbage = Uint8Array.from({ length: 1 + (i % 64) }, () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff);
      try {
        decodeTable("lobby.MyGamesListResponse", garbage);
      } catch (error) {
        expect(error).toBeInstanceOf(PayloadCodecError);
      }
    }
  });
});
