/**
 * Keeping a device session across page loads.
 *
 * `IndexedDbSessionStore` stores a WebCrypto key pair as the `CryptoKeyPair`
 * itself: IndexedDB keeps non-extractable keys by structured clone, so the
 * private key is usable after a reload yet still unreadable by scripts. A
 * seed key (runtimes without WebCrypto Ed25519) is stored as its seed, which
 * is as strong as the storage it sits in; prefer WebCrypto where it exists.
 */
import type { DeviceSession } from "./auth.js";
import { SeedDeviceKey, WebCryptoDeviceKey } from "./keys.js";

export interface SessionStore {
  load(): Promise<DeviceSession | undefined>;
  save(session: DeviceSession): Promise<void>;
  clear(): Promise<void>;
}

export class MemorySessionStore implements SessionStore {
  private session: DeviceSession | undefined;

  async load(): Promise<DeviceSession | undefined> {
    return this.session;
  }

  async save(session: DeviceSession): Promise<void> {
    this.session = session;
  }

  async clear(): Promise<void> {
    this.session = undefined;
  }
}

interface StoredRecord {
  readonly format: 1;
  readonly deviceSessionId: string;
  readonly keyPair?: CryptoKeyPair;
  readonly seed?: Uint8Array;
}

const STORE = "sessions";

export class IndexedDbSessionStore implements SessionStore {
  /** `name` tells several accounts (or gateways) apart in one origin. */
  constructor(
    private readonly name = "default",
    private readonly database = "galaxy-edge-client",
  ) {}

  private open(): Promise<IDBDatabase> {
    return new Promise((resolve, reject) => {
      const request = indexedDB.open(this.database, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(STORE);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }

  private async run<T>(mode: IDBTransactionMode, f: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await this.open();
    try {
      return await new Promise<T>((resolve, reject) => {
        const request = f(db.transaction(STORE, mode).objectStore(STORE));
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
    } finally {
      db.close();
    }
  }

  async load(): Promise<DeviceSession | undefined> {
    const record = (await this.run("readonly", (s) => s.get(this.name))) as StoredRecord | undefined;
    if (!record || record.format !== 1 || !record.deviceSessionId) return undefined;
    if (record.keyPair) {
      return { deviceSessionId: record.deviceSessionId, deviceKey: await WebCryptoDeviceKey.fromKeyPair(record.keyPair) };
    }
    if (record.seed) {
      return { deviceSessionId: record.deviceSessionId, deviceKey: await SeedDeviceKey.fromSeed(record.seed) };
    }
    return undefined;
  }

  async save(session: DeviceSession): Promise<void> {
    const key = session.deviceKey;
    let record: StoredRecord;
    if (key instanceof WebCryptoDeviceKey) {
      record = { format: 1, deviceSessionId: session.deviceSessionId, keyPair: key.keyPair };
    } else if (key instanceof SeedDeviceKey) {
      record = { format: 1, deviceSessionId: session.deviceSessionId, seed: key.exportSeed() };
    } else {
      throw new Error("IndexedDbSessionStore keeps WebCryptoDeviceKey and SeedDeviceKey keys only");
    }
    await this.run("readwrite", (s) => s.put(record, this.name));
  }

  async clear(): Promise<void> {
    await this.run("readwrite", (s) => s.delete(this.name));
  }
}
