/**
 * A SubscribeEvents stream that survives gateway restarts, rolling updates
 * and network blips.
 *
 * Each (re)connect signs a fresh opening request (new request_id, current
 * timestamp), so the replay protection never sees the same request twice.
 * Waits between attempts are "full jitter" exponential backoff (uniform in
 * [0, min(max, initial * 2^attempt)]), so clients cut off together by one
 * push-hub shutting down do not come back in one wave; the attempt counter
 * resets once a stream has delivered its verified bootstrap event.
 *
 * Each new stream resumes at the `position` of the last event delivered (the
 * bootstrap's counts: it is where its stream started), so push-hub first
 * replays what the user was sent while no stream was open: no gap, no
 * duplicate. When it cannot (`EventHistoryGoneError`) a reconnect with the
 * same position would fail the same way, so the subscription ends instead.
 */
import { Code } from "@connectrpc/connect";

import type { VerifiedEvent } from "./envelope.js";
import {
  EventHistoryGoneError,
  GatewayError,
  InvalidSubscribeOptionsError,
  RateLimitedError,
  SessionLookupLimitedError,
  SessionRevokedError,
  UnknownSessionError,
  VerificationError,
} from "./errors.js";

export type SubscriptionState = "connecting" | "open" | "reconnecting" | "closed";

export interface StateDetail {
  /** Attempts since the last stream that opened. */
  readonly attempt: number;
  /** The wait before the next attempt (state `reconnecting`). */
  readonly delayMs?: number;
  /** Why the previous stream ended (states `reconnecting` and `closed`). */
  readonly error?: unknown;
}

export interface SubscriptionHandlers {
  /**
   * A verified event, the `gateway.server_time` bootstrap of every stream
   * included. `subscription.position` moves to `event.position` once this
   * returns (or its promise resolves), so a saved position never skips an
   * event whose handler failed.
   */
  onEvent(event: VerifiedEvent): void | Promise<void>;
  onStateChange?(state: SubscriptionState, detail: StateDetail): void;
  /** What ended the subscription for good (it is `closed` afterwards). */
  onError?(error: unknown): void;
}

export interface SubscriptionOptions {
  /** First backoff ceiling (default 500 ms). */
  readonly initialBackoffMs?: number;
  /** Largest backoff ceiling (default 30 s). */
  readonly maxBackoffMs?: number;
  /** Uniform [0, 1) source for the jitter (tests pass a fixed one). */
  readonly random?: () => number;
  /** Aborting closes the subscription, like `close()`. */
  readonly signal?: AbortSignal;
  /**
   * Resume the first stream after this event `position` (a `subscription.position`
   * saved earlier, e.g. across a page reload) instead of starting from now.
   */
  readonly resumePosition?: string;
}

/** Opens one stream, resuming after `resumePosition` when there is one. */
export type OpenStream = (signal: AbortSignal, resumePosition: string | undefined) => AsyncIterable<VerifiedEvent>;

/** Errors a new stream cannot fix: the caller must log in again, the gateway is not who we pinned, or the resume position is gone. */
export function isPermanent(error: unknown): boolean {
  if (error instanceof SessionRevokedError || error instanceof UnknownSessionError) return true;
  if (error instanceof VerificationError) return true;
  // The position is too old to resume from: only a fresh start (after a refetch) helps.
  if (error instanceof EventHistoryGoneError) return true;
  // UNAUTHENTICATED, but about this address's lookups, not the session: retry later.
  if (error instanceof SessionLookupLimitedError) return false;
  if (error instanceof GatewayError) {
    return [
      Code.InvalidArgument,
      Code.Unauthenticated,
      Code.PermissionDenied,
      Code.FailedPrecondition,
      Code.Unimplemented,
    ].includes(error.code);
  }
  return error instanceof HandlerError;
}

/** `onEvent` threw: the subscription stops rather than drop the event and go on. */
export class HandlerError extends Error {
  override name = "HandlerError";

  constructor(override readonly cause: unknown) {
    super(`onEvent failed: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

export class EventSubscription {
  private current: SubscriptionState = "connecting";
  private readonly abort = new AbortController();
  private last: string | undefined;
  /** Settles when the subscription has closed (never rejects). */
  readonly done: Promise<void>;

  constructor(
    open: OpenStream,
    private readonly handlers: SubscriptionHandlers,
    private readonly options: SubscriptionOptions = {},
  ) {
    const outer = options.signal;
    if (outer) {
      if (outer.aborted) this.abort.abort();
      else outer.addEventListener("abort", () => this.abort.abort(), { once: true });
    }
    this.last = options.resumePosition || undefined;
    this.done = this.run(open);
  }

  get state(): SubscriptionState {
    return this.current;
  }

  /**
   * Where the next stream resumes: the `position` of the last event whose
   * `onEvent` completed (an event without one leaves it as it was), else
   * `options.resumePosition`. Persist it to resume after a reload. Undefined
   * before anything was delivered, and after an `EventHistoryGoneError` or an
   * `InvalidSubscribeOptionsError`, since resuming there can only fail again.
   */
  get position(): string | undefined {
    return this.last;
  }

  /** Stops the stream and any pending reconnect. */
  close(): void {
    this.abort.abort();
  }

  private setState(state: SubscriptionState, detail: StateDetail): void {
    this.current = state;
    this.handlers.onStateChange?.(state, detail);
  }

  private async run(open: OpenStream): Promise<void> {
    const signal = this.abort.signal;
    const initial = this.options.initialBackoffMs ?? 500;
    const max = this.options.maxBackoffMs ?? 30_000;
    const random = this.options.random ?? Math.random;
    let attempt = 0;
    this.setState("connecting", { attempt });
    while (!signal.aborted) {
      let failure: unknown;
      try {
        for await (const event of open(signal, this.last)) {
          if (this.current !== "open") {
            attempt = 0;
            this.setState("open", { attempt });
          }
          try {
            await this.handlers.onEvent(event);
          } catch (error) {
            throw new HandlerError(error);
          }
          // A gateway that predates resume sends no position: keep the last
          // one, as redelivering (same eventId) beats a silent gap.
          if (event.position) this.last = event.position;
        }
      } catch (error) {
        failure = error;
      }
      if (signal.aborted) break;
      if (failure instanceof EventHistoryGoneError || failure instanceof InvalidSubscribeOptionsError) {
        this.last = undefined;
      }
      if (failure !== undefined && isPermanent(failure)) {
        this.setState("closed", { attempt, error: failure });
        this.handlers.onError?.(failure);
        return;
      }
      const ceiling = Math.min(max, initial * 2 ** attempt);
      let delayMs = Math.floor(random() * ceiling);
      if (failure instanceof RateLimitedError && failure.retryAfterSeconds !== undefined) {
        delayMs = Math.max(delayMs, failure.retryAfterSeconds * 1000);
      }
      attempt += 1;
      this.setState("reconnecting", { attempt, delayMs, error: failure });
      await sleep(delayMs, signal);
    }
    this.setState("closed", { attempt });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
