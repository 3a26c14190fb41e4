// The repository README's two-user walkthrough, from Node, with the SDK as
// published (dist/). Against `make run`:
//
//   npm run build
//   node examples/two-users.mjs ../../.run/console/config.json [PROTOCOL...]
//
// PROTOCOL is connect (HTTP/2, the default), connect-http1, grpc or grpc-web;
// several run one after the other with the same two logins. config.json is what
// make run writes for its console (URLs, the server key to pin, the dev login
// code). Prints one JSON line per step; exits non-zero on the first error.
// tests/browser/test_node_sdk.py runs it on every protocol.
import { readFile } from "node:fs/promises";

import { EdgeClient, decodeEvent, login } from "../dist/lib/index.js";
import { nodeTransport } from "../dist/lib/transport/node.js";

const [configPath, ...protocols] = process.argv.slice(2);
if (!configPath) {
  console.error("usage: node examples/two-users.mjs CONFIG_JSON [connect|connect-http1|grpc|grpc-web ...]");
  process.exit(2);
}
const config = JSON.parse(await readFile(configPath, "utf-8"));
const step = (name, data) => console.log(JSON.stringify({ step: name, ...data }));
const suffix = Math.random().toString(16).slice(2, 10);

// Alice and Bob log in once (the dev code is accepted for every address).
const aliceSession = await login({ baseUrl: config.publicUrl, email: `alice+${suffix}@example.com`, code: config.devLoginCode });
const bobSession = await login({ baseUrl: config.publicUrl, email: `bob+${suffix}@example.com`, code: config.devLoginCode });
step("logged-in", { alice: aliceSession.deviceSessionId, bob: bobSession.deviceSessionId });

for (const protocol of protocols.length ? protocols : ["connect"]) {
  const transport = (baseUrl) =>
    protocol === "connect-http1"
      ? nodeTransport({ baseUrl, httpVersion: "1.1" })
      : nodeTransport({ baseUrl, protocol });
  const gateway = {
    commandTransport: transport(config.commandUrl),
    eventsTransport: transport(config.eventsUrl),
    serverPublicKey: config.serverPublicKey,
  };
  const alice = EdgeClient.forSession(aliceSession, gateway);
  const bob = EdgeClient.forSession(bobSession, gateway);

  // Alice looks at her account and opens a private game.
  step("alice.account", { protocol, ...(await alice.call("user.account.get", {})) });
  const { game } = await alice.call("lobby.game.create", { name: "Andromeda", visibility: "Private" });
  await alice.call("lobby.game.open-enrollment", { game_id: game.game_id });
  step("alice.game", { protocol, game_id: game.game_id });

  // Alice watches her events: the first is the signed server time.
  const received = [];
  let opened;
  const open = new Promise((resolve) => (opened = resolve));
  const submitted = new Promise((resolve, reject) => {
    const subscription = alice.events({
      onEvent(event) {
        received.push(event.eventType);
        step("alice.event", { protocol, event_type: event.eventType, body: decodeEvent(event).body ?? null });
        if (event.eventType === "lobby.application.submitted") {
          subscription.close();
          resolve();
        }
      },
      onStateChange: (state) => state === "open" && opened(),
      onError: reject,
    });
  });
  await Promise.race([open, submitted]);

  // Bob applies: Alice's stream receives lobby.application.submitted.
  await bob.call("lobby.application.submit", { game_id: game.game_id, race_name: "Zorgons" });
  await submitted;
  step("done", { protocol, events: received });
}
