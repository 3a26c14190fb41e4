/**
 * The JSON mapping of FlatBuffers payloads (docs/flatbuffers.md, "JSON
 * mapping"), driven by the schema descriptor generated from `schema/*.fbs`.
 *
 * It is the TypeScript twin of `edgecore.fbjson`: the same keys (snake_case,
 * as in the .fbs), enums by name, the same rules for absent fields and
 * defaults, the same error paths. One deliberate difference: JavaScript
 * numbers are exact only up to 2^53, so `long` / `ulong` accept a number, a
 * bigint or a decimal string, and decode to a number when it is safe and to a
 * decimal string when it is not (Python emits plain integers).
 *
 * Encoding uses the `flatbuffers` runtime's Builder. Decoding reads with a
 * bounds-checked DataView instead of the runtime's ByteBuffer, whose reads
 * past the end return `undefined`-turned-zero instead of failing: a payload
 * from the network gets a clear error, never garbage.
 */
import { Builder } from "flatbuffers";

import { fromUtf8 } from "./bytes.js";
import { PayloadCodecError } from "./errors.js";
import { ENUMS, type FieldSchema, type ScalarType, TABLES, type TableSchema } from "./gen/schema.js";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

const MAX_DEPTH = 64;
const MAX_ELEMENTS = 1_000_000;
const FLOAT32_MAX = 3.4028234663852886e38;

interface ScalarInfo {
  readonly size: number;
  readonly lo?: bigint;
  readonly hi?: bigint;
}

const SCALARS: Readonly<Record<ScalarType, ScalarInfo>> = {
  bool: { size: 1 },
  byte: { size: 1, lo: -(1n << 7n), hi: (1n << 7n) - 1n },
  ubyte: { size: 1, lo: 0n, hi: (1n << 8n) - 1n },
  short: { size: 2, lo: -(1n << 15n), hi: (1n << 15n) - 1n },
  ushort: { size: 2, lo: 0n, hi: (1n << 16n) - 1n },
  int: { size: 4, lo: -(1n << 31n), hi: (1n << 31n) - 1n },
  uint: { size: 4, lo: 0n, hi: (1n << 32n) - 1n },
  long: { size: 8, lo: -(1n << 63n), hi: (1n << 63n) - 1n },
  ulong: { size: 8, lo: 0n, hi: (1n << 64n) - 1n },
  float: { size: 4 },
  double: { size: 8 },
};

class Fail extends Error {
  readonly path: string[] = [];
}

function isScalar(type: string): type is ScalarType {
  return type in SCALARS;
}

function table(name: string): TableSchema {
  const found = TABLES[name];
  if (!found) throw new PayloadCodecError(`unknown table ${JSON.stringify(name)}`);
  return found;
}

/** What encoding a table needs beyond its schema, computed once per table, not per call. */
interface TablePlan {
  readonly byName: ReadonlyMap<string, FieldSchema>;
  readonly slots: number;
}

const plans = new Map<TableSchema, TablePlan>();

function planOf(schema: TableSchema): TablePlan {
  let plan = plans.get(schema);
  if (!plan) {
    const ids = schema.fields.map((f) => f.id);
    plan = { byName: new Map(schema.fields.map((f) => [f.name, f])), slots: ids.length ? Math.max(...ids) + 1 : 0 };
    plans.set(schema, plan);
  }
  return plan;
}

// Enum value -> name, built once per enum (decode emits names).
const enumNames = new Map<string, ReadonlyMap<number, string>>();

function enumName(enumType: string, value: number): string | undefined {
  let names = enumNames.get(enumType);
  if (!names) {
    const values = ENUMS[enumType]?.values ?? {};
    // The first name wins for aliased values, as in edgecore.fbjson.
    names = new Map(Object.entries(values).reverse().map(([name, v]) => [v, name]));
    enumNames.set(enumType, names);
  }
  return names.get(value);
}

/** Every table the codec knows, by qualified name (`user.AccountGetRequest`). */
export function tableNames(): string[] {
  return Object.keys(TABLES).sort();
}

// --- encoding ------------------------------------------------------------------

/** Encodes a JSON object as the FlatBuffers table `tableName` (qualified, e.g. `lobby.GameCreateRequest`). */
export function encodeTable(tableName: string, data: unknown): Uint8Array {
  const plan = table(tableName);
  const builder = new Builder(256);
  try {
    builder.finish(writeTable(builder, plan, data, 1));
  } catch (error) {
    throw asCodecError(tableName, error);
  }
  return builder.asUint8Array().slice();
}

function asCodecError(tableName: string, error: unknown): Error {
  if (error instanceof Fail) {
    return new PayloadCodecError(`${tableName}${error.path.reverse().join("")}: ${error.message}`);
  }
  if (error instanceof RangeError) {
    return new PayloadCodecError(`${tableName}: malformed buffer (${error.message})`);
  }
  return error instanceof Error ? error : new PayloadCodecError(String(error));
}

function withPath<T>(segment: string, f: () => T): T {
  try {
    return f();
  } catch (error) {
    if (error instanceof Fail) error.path.push(segment);
    throw error;
  }
}

function writeTable(builder: Builder, plan: TableSchema, data: unknown, depth: number): number {
  if (typeof data !== "object" || data === null || Array.isArray(data)) throw new Fail("expected object");
  if (depth > MAX_DEPTH) throw new Fail(`nesting deeper than ${MAX_DEPTH} tables`);
  const { byName, slots } = planOf(plan);
  const scalars: Array<[FieldSchema, bigint | number | boolean]> = [];
  const offsets: Array<[FieldSchema, number]> = [];
  const given = new Set<string>();
  // Strings, vectors and tables are written before the table that points at them.
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    const f = byName.get(key);
    if (!f) throw new Fail(`unknown field ${JSON.stringify(key)}`);
    if (f.deprecated) throw new Fail(`field ${JSON.stringify(key)} is deprecated`);
    if (value === null || value === undefined) continue;
    given.add(key);
    withPath(`.${key}`, () => {
      if (f.type === "string") offsets.push([f, writeString(builder, value)]);
      else if (f.type === "table") offsets.push([f, writeTable(builder, table(f.table!), value, depth + 1)]);
      else if (f.type === "vector") offsets.push([f, writeVector(builder, f, value, depth)]);
      else scalars.push([f, scalarValue(f.type, f.enum, value)]);
    });
  }
  for (const f of plan.fields) {
    if (f.required && !given.has(f.name)) throw new Fail(`missing required field ${JSON.stringify(f.name)}`);
  }
  builder.startObject(slots);
  for (const [f, value] of scalars) addScalarField(builder, f, value);
  for (const [f, offset] of offsets) builder.addFieldOffset(f.id, offset, 0);
  return builder.endObject();
}

function writeString(builder: Builder, value: unknown): number {
  if (typeof value !== "string") throw new Fail("expected string");
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(value)) {
    throw new Fail("string is not encodable as UTF-8 (lone surrogate)");
  }
  return builder.createString(value);
}

function writeVector(builder: Builder, f: FieldSchema, value: unknown, depth: number): number {
  if (!Array.isArray(value)) throw new Fail("expected array");
  const element = f.element!;
  const items = value.map((item, index) =>
    withPath(`[${index}]`, () => {
      if (element === "string") return writeString(builder, item);
      if (element === "table") return writeTable(builder, table(f.table!), item, depth + 1);
      return scalarValue(element, f.enum, item);
    }),
  );
  const size = isScalar(element) ? SCALARS[element].size : 4;
  builder.startVector(size, items.length, size);
  for (let i = items.length - 1; i >= 0; i--) {
    const item = items[i]!;
    if (!isScalar(element)) builder.addOffset(item as number);
    else addScalar(builder, element, item as bigint | number | boolean);
  }
  return builder.endVector();
}

function addScalar(builder: Builder, type: ScalarType, value: bigint | number | boolean): void {
  switch (type) {
    case "bool":
      return builder.addInt8(value ? 1 : 0);
    case "byte":
    case "ubyte":
      return builder.addInt8(Number(value));
    case "short":
    case "ushort":
      return builder.addInt16(Number(value));
    case "int":
    case "uint":
      return builder.addInt32(Number(value));
    case "long":
    case "ulong":
      return builder.addInt64(BigInt.asIntN(64, BigInt(value)));
    case "float":
      return builder.addFloat32(Number(value));
    case "double":
      return builder.addFloat64(Number(value));
  }
}

function addScalarField(builder: Builder, f: FieldSchema, value: bigint | number | boolean): void {
  const type = f.type as ScalarType;
  // Defaults are not stored (as flatc's builders do); an optional scalar always is.
  const fallback = f.optional ? null : defaultOf(f);
  const slot = f.id;
  const small = (v: bigint | number | boolean | null) => (v === null ? null : Number(v));
  switch (type) {
    case "bool":
      return builder.addFieldInt8(slot, value ? 1 : 0, small(fallback));
    case "byte":
    case "ubyte":
      return builder.addFieldInt8(slot, Number(value), small(fallback));
    case "short":
    case "ushort":
      return builder.addFieldInt16(slot, Number(value), small(fallback));
    case "int":
    case "uint":
      return builder.addFieldInt32(slot, Number(value), small(fallback));
    case "long":
    case "ulong": {
      const wide = (v: bigint | number | boolean) => BigInt.asIntN(64, BigInt(v));
      return builder.addFieldInt64(slot, wide(value), fallback === null ? null : wide(fallback));
    }
    case "float":
      return builder.addFieldFloat32(slot, Number(value), small(fallback));
    case "double":
      return builder.addFieldFloat64(slot, Number(value), small(fallback));
  }
}

function defaultOf(f: FieldSchema): bigint | number | boolean {
  const type = f.type as ScalarType;
  if (type === "bool") return f.default === true;
  if (type === "long" || type === "ulong") return BigInt(f.default ?? 0);
  return Number(f.default ?? 0);
}

function scalarValue(type: ScalarType, enumName: string | undefined, value: unknown): bigint | number | boolean {
  if (type === "bool") {
    if (typeof value !== "boolean") throw new Fail("expected boolean");
    return value;
  }
  if (type === "float" || type === "double") {
    if (typeof value !== "number") throw new Fail("expected number");
    if (type === "float" && Number.isFinite(value) && Math.abs(value) > FLOAT32_MAX) {
      throw new Fail(`value ${value} out of range for float`);
    }
    return value;
  }
  const info = SCALARS[type];
  let integer: bigint;
  if (enumName !== undefined && typeof value === "string") {
    const known = ENUMS[enumName]?.values[value];
    if (known === undefined) throw new Fail(`unknown ${enumName} value ${JSON.stringify(value)}`);
    return known;
  }
  if (typeof value === "bigint") integer = value;
  else if (typeof value === "number" && Number.isInteger(value)) {
    if (!Number.isSafeInteger(value)) throw new Fail(`value ${value} is not exact in JSON; send 64-bit integers as decimal strings`);
    integer = BigInt(value);
  } else if (typeof value === "string" && (type === "long" || type === "ulong") && /^-?\d+$/.test(value)) {
    integer = BigInt(value);
  } else {
    throw new Fail(enumName !== undefined ? `expected ${enumName} name or integer` : "expected integer");
  }
  if (integer < info.lo! || integer > info.hi!) {
    throw new Fail(`value ${integer} out of range for ${enumName ?? type} (${info.lo}..${info.hi})`);
  }
  return type === "long" || type === "ulong" ? integer : Number(integer);
}

// --- decoding ------------------------------------------------------------------

/** Decodes a FlatBuffers payload of table `tableName` to its JSON mapping. */
export function decodeTable(tableName: string, payload: Uint8Array): JsonObject {
  const plan = table(tableName);
  try {
    return new Reader(payload).root(plan);
  } catch (error) {
    throw asCodecError(tableName, error);
  }
}

class Reader {
  private readonly view: DataView;
  private elements = 0;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  root(plan: TableSchema): JsonObject {
    if (this.bytes.length < 4) throw new Fail("malformed buffer: shorter than the root offset");
    return this.table(plan, this.u32(0), 1);
  }

  private u32(pos: number): number {
    if (pos < 0 || pos + 4 > this.bytes.length) throw new Fail("malformed buffer: offset out of bounds");
    return this.view.getUint32(pos, true);
  }

  private u16(pos: number): number {
    if (pos < 0 || pos + 2 > this.bytes.length) throw new Fail("malformed buffer: vtable out of bounds");
    return this.view.getUint16(pos, true);
  }

  private table(plan: TableSchema, pos: number, depth: number): JsonObject {
    if (depth > MAX_DEPTH) throw new Fail(`nesting deeper than ${MAX_DEPTH} tables`);
    const vtable = pos - this.view.getInt32(this.check(pos, 4), true);
    const vtableLength = this.u16(vtable);
    const tableLength = this.u16(vtable + 2);
    this.check(pos, tableLength);
    const out: JsonObject = {};
    for (const f of plan.fields) {
      const voffset = 4 + 2 * f.id;
      const offset = voffset + 2 <= vtableLength ? this.u16(vtable + voffset) : 0;
      if (offset === 0) {
        if (f.required) throw new Fail(`malformed buffer: required field ${JSON.stringify(f.name)} is missing`);
        if (!f.deprecated && isScalar(f.type) && !f.optional) out[f.name] = this.jsonScalar(f.enum, defaultOf(f));
        continue;
      }
      if (f.deprecated) continue;
      const at = pos + offset;
      const size = isScalar(f.type) ? SCALARS[f.type].size : 4;
      if (offset + size > tableLength) throw new Fail(`malformed buffer: field ${JSON.stringify(f.name)} lies outside its table`);
      out[f.name] = withPath(`.${f.name}`, () => this.value(f, f.type, at, depth));
    }
    return out;
  }

  private check(pos: number, length: number): number {
    if (pos < 0 || pos + length > this.bytes.length) throw new Fail("malformed buffer: table out of bounds");
    return pos;
  }

  private value(f: FieldSchema, type: FieldSchema["type"] | NonNullable<FieldSchema["element"]>, at: number, depth: number): Json {
    if (isScalar(type)) return this.jsonScalar(f.enum, this.scalar(type, at));
    const target = at + this.u32(at);
    if (type === "string") return this.string(target);
    if (type === "table") return this.table(table(f.table!), target, depth + 1);
    const length = this.u32(target);
    const element = f.element!;
    const size = isScalar(element) ? SCALARS[element].size : 4;
    this.elements += length;
    if (this.elements > MAX_ELEMENTS) throw new Fail(`more than ${MAX_ELEMENTS} vector elements`);
    this.check(target + 4, length * size);
    const items: Json[] = [];
    for (let i = 0; i < length; i++) {
      items.push(withPath(`[${i}]`, () => this.value(f, element, target + 4 + i * size, depth)));
    }
    return items;
  }

  private string(pos: number): string {
    const length = this.u32(pos);
    if (pos + 4 + length > this.bytes.length) throw new Fail("malformed buffer: string extends past the end of the buffer");
    try {
      return fromUtf8(this.bytes.subarray(pos + 4, pos + 4 + length));
    } catch {
      throw new Fail("malformed buffer: string is not valid UTF-8");
    }
  }

  private scalar(type: ScalarType, at: number): bigint | number | boolean {
    this.check(at, SCALARS[type].size);
    const v = this.view;
    switch (type) {
      case "bool":
        return v.getUint8(at) !== 0;
      case "byte":
        return v.getInt8(at);
      case "ubyte":
        return v.getUint8(at);
      case "short":
        return v.getInt16(at, true);
      case "ushort":
        return v.getUint16(at, true);
      case "int":
        return v.getInt32(at, true);
      case "uint":
        return v.getUint32(at, true);
      case "long":
        return v.getBigInt64(at, true);
      case "ulong":
        return v.getBigUint64(at, true);
      case "float":
        return v.getFloat32(at, true);
      case "double":
        return v.getFloat64(at, true);
    }
  }

  private jsonScalar(enumType: string | undefined, value: bigint | number | boolean): Json {
    if (typeof value === "bigint") {
      return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(value)
        : value.toString();
    }
    if (enumType !== undefined && typeof value === "number") return enumName(enumType, value) ?? value;
    return value;
  }

}
