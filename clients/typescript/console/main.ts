/**
 * The browser console: log in with the e-mail code, call any message type
 * with a JSON body, watch live events. Everything goes through the SDK and
 * the unmodified `@connectrpc/connect-web` transports, so what works here
 * works in a game's web UI.
 *
 * `config.json` next to this page names the gateway's URLs and the server
 * key to pin; `make run` writes it (docs/client-typescript.md).
 */
import {
  BusinessError,
  EdgeClient,
  type EventSubscription,
  GatewayError,
  IndexedDbSessionStore,
  MESSAGE_TYPES,
  type MessageType,
  PublicAuthClient,
  REQUEST_TABLES,
  SeedDeviceKey,
  VerificationError,
  type DeviceSession,
  decodeEvent,
  decodeResult,
  encodeRequest,
  generateDeviceKey,
  parseServerPublicKey,
  publicKeyBase64,
} from "../src/index.js";
import { ENUMS, TABLES } from "../src/gen/schema.js";
import { webTransport } from "../src/transport/web.js";

interface ConsoleConfig {
  readonly publicUrl?: string;
  readonly commandUrl: string;
  readonly eventsUrl?: string;
  readonly serverPublicKey: string;
  readonly devLoginCode?: string;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function setState(id: string, state: string, text = state.replace("-", " ")): void {
  const el = $(id);
  el.dataset["state"] = state;
  el.textContent = text;
}

function pretty(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2);
}

function describeFields(table: string): string {
  const schema = TABLES[table];
  if (!schema) return "";
  const fields = schema.fields.filter((f) => !f.deprecated);
  if (fields.length === 0) return `${table}: no fields, send {}`;
  const describe = (f: (typeof fields)[number]) => {
    if (f.enum) return `${f.name}: ${Object.keys(ENUMS[f.enum]?.values ?? {}).join(" | ")}`;
    if (f.type === "vector") return `${f.name}: [${f.table ?? f.element}]`;
    return `${f.name}: ${f.table ?? f.type}`;
  };
  return `${table} — ${fields.map(describe).join(", ")}`;
}

async function main(): Promise<void> {
  const config = (await (await fetch("config.json", { cache: "no-store" })).json()) as ConsoleConfig;
  const serverKey = parseServerPublicKey(config.serverPublicKey);
  $("server-key").textContent = config.serverPublicKey;
  // public-rest serves this page, so the login API is on its own origin, whatever
  // host name the page was opened under (config.publicUrl is informational).
  const auth = new PublicAuthClient({ baseUrl: "" });
  const store = new IndexedDbSessionStore(`console:${config.serverPublicKey}`);
  const commandTransport = webTransport({ baseUrl: config.commandUrl });
  const eventsTransport = webTransport({ baseUrl: config.eventsUrl || config.commandUrl });
  if (config.devLoginCode) $<HTMLInputElement>("code").value = config.devLoginCode;

  let client: EdgeClient | undefined;
  let subscription: EventSubscription | undefined;
  let challengeId = "";

  const select = $<HTMLSelectElement>("message-type");
  for (const type of MESSAGE_TYPES) select.add(new Option(type, type));
  const showFields = () => ($("fields").textContent = describeFields(REQUEST_TABLES[select.value as MessageType]));
  select.addEventListener("change", showFields);
  showFields();

  const loginError = (error: unknown) => ($("login-error").textContent = error instanceof Error ? error.message : String(error));

  const useSession = (session: DeviceSession | undefined) => {
    subscription?.close();
    client = session
      ? EdgeClient.forSession(session, { commandTransport, eventsTransport, serverPublicKey: serverKey })
      : undefined;
    setState("login-state", session ? "logged-in" : "logged-out");
    $("session-id").textContent = session?.deviceSessionId ?? "none";
    $("key-kind").textContent = session
      ? `${session.deviceKey instanceof SeedDeviceKey ? "seed (no WebCrypto Ed25519)" : "WebCrypto, non-extractable"}, public ${publicKeyBase64(session.deviceKey)}`
      : "–";
    for (const id of ["call", "events-start", "logout"]) $<HTMLButtonElement>(id).disabled = !session;
    $<HTMLButtonElement>("events-stop").disabled = true;
    setState("events-state", "idle");
  };

  $("send-code").addEventListener("click", async () => {
    loginError("");
    try {
      challengeId = await auth.sendEmailCode($<HTMLInputElement>("email").value.trim());
      setState("login-state", "code-sent");
      $<HTMLButtonElement>("confirm").disabled = false;
    } catch (error) {
      loginError(error);
    }
  });

  $("confirm").addEventListener("click", async () => {
    loginError("");
    try {
      const deviceKey = await generateDeviceKey();
      const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
      const code = $<HTMLInputElement>("code").value.trim();
      const deviceSessionId = await auth.confirmEmailCode(challengeId, code, publicKeyBase64(deviceKey), timeZone);
      const session = { deviceSessionId, deviceKey };
      await store.save(session);
      useSession(session);
    } catch (error) {
      loginError(error);
    }
  });

  $("logout").addEventListener("click", async () => {
    await store.clear();
    useSession(undefined);
  });

  $("call").addEventListener("click", async () => {
    const result = $("result");
    result.dataset["outcome"] = "pending";
    delete result.dataset["resultCode"];
    result.textContent = "…";
    const type = select.value as MessageType;
    try {
      if (!client) throw new Error("log in first");
      const payload = encodeRequest(type, JSON.parse($<HTMLTextAreaElement>("body").value || "{}"));
      const verified = await client.execute(type, payload);
      result.dataset["resultCode"] = verified.resultCode;
      result.dataset["outcome"] = "ok";
      result.textContent = pretty(decodeResult(type, verified));
    } catch (error) {
      result.dataset["outcome"] =
        error instanceof BusinessError
          ? "business-error"
          : error instanceof VerificationError
            ? "verification-error"
            : error instanceof GatewayError
              ? "gateway-error"
              : "error";
      if (!(error instanceof BusinessError)) delete result.dataset["resultCode"];
      result.textContent = error instanceof Error ? error.message : String(error);
    }
  });

  $("events-start").addEventListener("click", () => {
    if (!client) return;
    subscription?.close();
    $<HTMLButtonElement>("events-start").disabled = true;
    $<HTMLButtonElement>("events-stop").disabled = false;
    subscription = client.events({
      onEvent(event) {
        const li = document.createElement("li");
        li.className = "event";
        li.dataset["eventType"] = event.eventType;
        li.dataset["verified"] = "true";
        if (event.position) li.dataset["position"] = event.position; // where a resumed stream would pick up
        const decoded = decodeEvent(event);
        const body = decoded.kind === "unknown" ? { payload_bytes: decoded.payload.length } : decoded.body;
        li.innerHTML = `<span class="verified" title="signature verified">✔</span> <span class="type"></span> <span class="id"></span><br><span class="body"></span>`;
        li.querySelector(".type")!.textContent = event.eventType;
        li.querySelector(".id")!.textContent = `${event.eventId}${event.requestId ? ` (request ${event.requestId})` : ""}`;
        li.querySelector(".body")!.textContent = pretty(body);
        $("events").prepend(li);
      },
      onStateChange(state, detail) {
        const wait = state === "reconnecting" && detail.delayMs !== undefined ? ` in ${(detail.delayMs / 1000).toFixed(1)} s` : "";
        const why = detail.error instanceof Error ? ` (${detail.error.message})` : "";
        setState("events-state", state, `${state}${wait}${why}`);
        if (state === "closed") {
          $<HTMLButtonElement>("events-start").disabled = !client;
          $<HTMLButtonElement>("events-stop").disabled = true;
        }
      },
    });
  });

  $("events-stop").addEventListener("click", () => subscription?.close());

  useSession(await store.load().catch(() => undefined));
}

main().catch((error: unknown) => {
  document.body.insertAdjacentHTML("afterbegin", '<p class="error" id="fatal"></p>');
  $("fatal").textContent = `console failed to start: ${error instanceof Error ? error.message : String(error)}`;
});
