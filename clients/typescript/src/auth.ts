/**
 * The e-mail code login of the public REST surface (public-rest):
 * `send-email-code`, then `confirm-email-code` with the device's public key.
 */
import { PublicApiError, parseRetryAfter } from "./errors.js";
import { type DeviceKey, generateDeviceKey, publicKeyBase64 } from "./keys.js";

export const SEND_EMAIL_CODE_PATH = "/api/v1/public/auth/send-email-code";
export const CONFIRM_EMAIL_CODE_PATH = "/api/v1/public/auth/confirm-email-code";
export const DEFAULT_TIMEOUT_MS = 10_000;

export interface PublicAuthOptions {
  /** Public REST base URL, e.g. `http://127.0.0.1:8080`; empty = this page's origin. */
  readonly baseUrl: string;
  readonly timeoutMs?: number;
  /** A `fetch` to use instead of the global one. */
  readonly fetch?: typeof fetch;
}

/** What a completed login leaves: the device session and the key that signs for it. */
export interface DeviceSession {
  readonly deviceSessionId: string;
  readonly deviceKey: DeviceKey;
}

export class PublicAuthClient {
  readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  constructor(options: PublicAuthOptions) {
    const base = options.baseUrl.replace(/\/+$/, "");
    if (base && !/^https?:\/\//.test(base)) {
      throw new Error(`public URL must start with http:// or https://: ${JSON.stringify(options.baseUrl)}`);
    }
    this.baseUrl = base;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** Asks for a login code to be mailed; returns the `challenge_id`. */
  async sendEmailCode(email: string, acceptLanguage?: string): Promise<string> {
    const headers: Record<string, string> = acceptLanguage ? { "Accept-Language": acceptLanguage } : {};
    const body = await this.post(SEND_EMAIL_CODE_PATH, { email }, headers);
    return requiredString(body, "challenge_id");
  }

  /** Exchanges the code for a device session bound to `clientPublicKeyBase64`. */
  async confirmEmailCode(challengeId: string, code: string, clientPublicKeyBase64: string, timeZone: string): Promise<string> {
    const body = await this.post(
      CONFIRM_EMAIL_CODE_PATH,
      { challenge_id: challengeId, code, client_public_key: clientPublicKeyBase64, time_zone: timeZone },
      {},
    );
    return requiredString(body, "device_session_id");
  }

  private async post(path: string, payload: Record<string, string>, headers: Record<string, string>): Promise<Record<string, unknown>> {
    const where = this.baseUrl || "the public API";
    let response: Response;
    try {
      response = await this.fetch(this.baseUrl + path, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", ...headers },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      if (error instanceof DOMException && error.name === "TimeoutError") {
        throw new PublicApiError(0, "timeout", `${where} did not answer in time`);
      }
      throw new PublicApiError(0, "unreachable", `cannot reach ${where}`);
    }
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      body = undefined;
    }
    if (response.ok) {
      if (typeof body !== "object" || body === null || Array.isArray(body)) {
        throw new PublicApiError(response.status, "invalid_response", "answer is not a JSON object");
      }
      return body as Record<string, unknown>;
    }
    const retryAfter = parseRetryAfter(response.headers.get("Retry-After"));
    const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    if (error && typeof error.code === "string" && error.code) {
      throw new PublicApiError(response.status, error.code, typeof error.message === "string" ? error.message : "", retryAfter);
    }
    throw new PublicApiError(response.status, `http_${response.status}`, response.statusText || "request failed", retryAfter);
  }
}

function requiredString(body: Record<string, unknown>, key: string): string {
  const value = body[key];
  if (typeof value !== "string" || !value) throw new PublicApiError(200, "invalid_response", `answer has no ${key}`);
  return value;
}

export interface LoginOptions extends PublicAuthOptions {
  readonly email: string;
  /** The mailed code; called after `send-email-code` succeeded (prompt the user here). */
  readonly code: string | ((challengeId: string) => Promise<string> | string);
  /** IANA time zone; defaults to this runtime's. */
  readonly timeZone?: string;
  readonly acceptLanguage?: string;
  /** The device key to bind; defaults to a fresh one (`generateDeviceKey`). */
  readonly deviceKey?: DeviceKey;
}

/**
 * The whole login: send the code, obtain it, confirm with a device key.
 * Every login binds a key to a new device session; keep both together.
 */
export async function login(options: LoginOptions): Promise<DeviceSession> {
  const auth = new PublicAuthClient(options);
  const challengeId = await auth.sendEmailCode(options.email, options.acceptLanguage);
  const code = typeof options.code === "string" ? options.code : await options.code(challengeId);
  const deviceKey = options.deviceKey ?? (await generateDeviceKey());
  const timeZone = options.timeZone ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? "UTC";
  const deviceSessionId = await auth.confirmEmailCode(challengeId, code, publicKeyBase64(deviceKey), timeZone);
  return { deviceSessionId, deviceKey };
}
