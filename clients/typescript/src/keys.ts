/**
 * Device keys (the client's Ed25519 signing key) and the pinned server key.
 *
 * A new device key is a non-extractable WebCrypto key where the runtime has
 * Ed25519 (current browsers, Node 20): its private half cannot be read by
 * page scripts, and the `CryptoKeyPair` can still be stored in IndexedDB
 * (structured clone). Elsewhere the key is a random seed held by
 * `@noble/ed25519`. Either way the private key never leaves the client; only
 * the raw 32-byte public key is sent to `confirm-email-code`.
 */
import * as ed from "@noble/ed25519";
import { sha512 } from "@noble/hashes/sha2.js";

import { fromBase64, fromHex, toBase64 } from "./bytes.js";
import { ED25519_PUBLIC_KEY_SIZE, ED25519_SIGNATURE_SIZE } from "./signing.js";

// SHA-512 from @noble/hashes rather than WebCrypto's: `crypto.subtle` exists
// only in secure contexts, and a page served over plain http on a LAN address
// must still verify what the gateway signs.
ed.hashes.sha512 = sha512;
ed.hashes.sha512Async = (message: Uint8Array) => Promise.resolve(sha512(message));

export interface DeviceKey {
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** Ed25519 signature (64 bytes) of `message`. */
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/** Standard base64 of the raw public key, as `confirm-email-code` wants it. */
export function publicKeyBase64(key: DeviceKey): string {
  return toBase64(key.publicKey);
}

/** A device key backed by a WebCrypto `CryptoKeyPair` (non-extractable private key). */
export class WebCryptoDeviceKey implements DeviceKey {
  private constructor(
    readonly keyPair: CryptoKeyPair,
    readonly publicKey: Uint8Array,
  ) {}

  /** Wraps a stored pair (e.g. read back from IndexedDB). */
  static async fromKeyPair(keyPair: CryptoKeyPair): Promise<WebCryptoDeviceKey> {
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", keyPair.publicKey));
    return new WebCryptoDeviceKey(keyPair, raw);
  }

  static async generate(): Promise<WebCryptoDeviceKey> {
    const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, false, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    return WebCryptoDeviceKey.fromKeyPair(pair);
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(
      await crypto.subtle.sign({ name: "Ed25519" }, this.keyPair.privateKey, message as BufferSource),
    );
  }
}

/**
 * A device key from a 32-byte seed, signed with `@noble/ed25519`.
 *
 * For runtimes without WebCrypto Ed25519, and for callers that persist the
 * seed themselves (a native app's keychain, a CLI profile). The seed is the
 * credential: never log or transmit it.
 */
export class SeedDeviceKey implements DeviceKey {
  readonly #seed: Uint8Array;

  private constructor(
    seed: Uint8Array,
    readonly publicKey: Uint8Array,
  ) {
    this.#seed = seed;
  }

  static async fromSeed(seed: Uint8Array): Promise<SeedDeviceKey> {
    if (seed.length !== 32) throw new RangeError("an Ed25519 seed is exactly 32 bytes");
    const copy = Uint8Array.from(seed);
    return new SeedDeviceKey(copy, await ed.getPublicKeyAsync(copy));
  }

  static async generate(): Promise<SeedDeviceKey> {
    return SeedDeviceKey.fromSeed(crypto.getRandomValues(new Uint8Array(32)));
  }

  /** The seed, for a caller that stores the key itself. */
  exportSeed(): Uint8Array {
    return Uint8Array.from(this.#seed);
  }

  sign(message: Uint8Array): Promise<Uint8Array> {
    return ed.signAsync(message, this.#seed);
  }
}

let webCryptoEd25519: Promise<boolean> | undefined;

/** Whether this runtime's WebCrypto generates and signs with Ed25519 keys. */
export function hasWebCryptoEd25519(): Promise<boolean> {
  webCryptoEd25519 ??= (async () => {
    try {
      if (!globalThis.crypto?.subtle) return false;
      const key = await WebCryptoDeviceKey.generate();
      const message = new Uint8Array([1]);
      return await verifySignature(key.publicKey, message, await key.sign(message));
    } catch {
      return false;
    }
  })();
  return webCryptoEd25519;
}

/** A fresh device key: WebCrypto (non-extractable) when available, else a noble seed key. */
export async function generateDeviceKey(): Promise<DeviceKey> {
  return (await hasWebCryptoEd25519()) ? WebCryptoDeviceKey.generate() : SeedDeviceKey.generate();
}

export type VerifyEngine = "webcrypto" | "noble";

export interface VerifyOptions {
  /** Force one implementation (tests); default: WebCrypto where it has Ed25519, else noble. */
  readonly engine?: VerifyEngine;
}

/**
 * Whether `signature` is a valid Ed25519 signature of `message` by `publicKey`.
 *
 * WebCrypto's Ed25519 where the runtime has it (about 7x faster than noble in
 * Node 20: 260 against 1,860 µs per verification, bench/sdk.bench.mjs), else
 * `@noble/ed25519` in RFC 8032 strict mode (`zip215: false`). The two may
 * differ only on non-canonical encodings of a signature the key's holder made
 * itself, never on whether someone without the key can forge one. Wrong
 * lengths or a malformed key are `false`, never a throw.
 */
export async function verifySignature(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  options: VerifyOptions = {},
): Promise<boolean> {
  if (publicKey.length !== ED25519_PUBLIC_KEY_SIZE || signature.length !== ED25519_SIGNATURE_SIZE) {
    return false;
  }
  if (options.engine !== "noble") {
    const key = await importVerifyKey(publicKey);
    if (key) {
      try {
        return await crypto.subtle.verify({ name: "Ed25519" }, key, signature as BufferSource, message as BufferSource);
      } catch {
        return false;
      }
    }
    if (options.engine === "webcrypto") throw new Error("this runtime's WebCrypto has no Ed25519");
  }
  try {
    return await ed.verifyAsync(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

// A client verifies against one pinned server key: keep the few imported keys
// instead of importing per message. Undefined: no WebCrypto Ed25519 here.
const importedKeys = new Map<string, Promise<CryptoKey | undefined>>();
const MAX_IMPORTED_KEYS = 8;

function importVerifyKey(publicKey: Uint8Array): Promise<CryptoKey | undefined> {
  const id = toBase64(publicKey);
  let key = importedKeys.get(id);
  if (!key) {
    key = (async () => {
      try {
        if (!globalThis.crypto?.subtle) return undefined;
        return await crypto.subtle.importKey("raw", publicKey as BufferSource, { name: "Ed25519" }, false, ["verify"]);
      } catch {
        return undefined;
      }
    })();
    if (importedKeys.size >= MAX_IMPORTED_KEYS) importedKeys.delete(importedKeys.keys().next().value!);
    importedKeys.set(id, key);
  }
  return key;
}

// SubjectPublicKeyInfo prefix of an Ed25519 key (RFC 8410): SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }.
const SPKI_ED25519_PREFIX = fromHex("302a300506032b6570032100");

/**
 * The gateway's response-signer public key, pinned by the operator.
 *
 * Accepts standard or URL-safe base64 of the raw 32 bytes, 64 hex digits, or
 * a `-----BEGIN PUBLIC KEY-----` PEM (`openssl pkey -pubout`), like `edgectl`.
 */
export function parseServerPublicKey(text: string): Uint8Array {
  const value = text.trim();
  let raw: Uint8Array | undefined;
  if (value.startsWith("-----BEGIN PUBLIC KEY-----")) {
    const body = value
      .replace("-----BEGIN PUBLIC KEY-----", "")
      .replace("-----END PUBLIC KEY-----", "")
      .replace(/\s+/g, "");
    const der = safe(() => fromBase64(body));
    if (der && der.length === SPKI_ED25519_PREFIX.length + 32 && startsWith(der, SPKI_ED25519_PREFIX)) {
      raw = der.slice(SPKI_ED25519_PREFIX.length);
    }
  } else if (/^[0-9a-fA-F]{64}$/.test(value)) {
    raw = fromHex(value);
  } else {
    raw = safe(() => fromBase64(value));
  }
  if (!raw || raw.length !== ED25519_PUBLIC_KEY_SIZE) {
    throw new Error(
      "server public key must be base64 or hex of the raw 32-byte Ed25519 key, or a PUBLIC KEY PEM",
    );
  }
  return raw;
}

function safe<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

function startsWith(data: Uint8Array, prefix: Uint8Array): boolean {
  return prefix.every((b, i) => data[i] === b);
}
