// Per-call client cost of the TypeScript SDK in Node (one core): what signing a
// request, verifying a response and the JSON codec add to every ExecuteCommand.
// Prints figures; asserts nothing. Run after `npm run build`:
//   node bench/sdk.bench.mjs
import { performance } from "node:perf_hooks";

import {
  SeedDeviceKey,
  WebCryptoDeviceKey,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  payloadHash,
  responseSigningInput,
  signRequest,
  verifyResponse,
  verifySignature,
} from "../dist/lib/index.js";

async function measure(label, iterations, body) {
  for (let i = 0; i < Math.min(200, iterations); i++) await body(i); // warm-up
  const started = performance.now();
  for (let i = 0; i < iterations; i++) await body(i);
  const perCallUs = ((performance.now() - started) * 1000) / iterations;
  console.log(`${label.padEnd(44)} ${perCallUs.toFixed(1).padStart(8)} µs/op  (${iterations} ops)`);
}

const seedKey = await SeedDeviceKey.generate();
const webKey = await WebCryptoDeviceKey.generate();
const server = await SeedDeviceKey.generate();
const body = { name: "Andromeda", visibility: "Private", max_players: 8 };
const payload = encodeRequest("lobby.game.create", body);
const responsePayload = encodeResponse("lobby.my.games.list", {
  games: Array.from({ length: 20 }, (_, i) => ({ game_id: `g-${i}`, name: `Game ${i}`, current_turn: i, created_at_ms: 1767225600000 + i, status: "Running", visibility: "Public" })),
});
const fields = { protocolVersion: "v1", requestId: "r-1", timestampMs: 1n, resultCode: "ok", payloadHash: payloadHash(responsePayload) };
const response = { ...fields, payloadBytes: responsePayload, signature: await server.sign(responseSigningInput(fields)) };
const request = (key) => (i) =>
  signRequest(key, { deviceSessionId: "ds-1", messageType: "lobby.game.create", timestampMs: BigInt(i), requestId: `r-${i}`, payload });

console.log(`node ${process.version}, payloads: request ${payload.length} B, response ${responsePayload.length} B (20 games)`);
await measure("encode lobby.game.create (JSON codec)", 20000, () => encodeRequest("lobby.game.create", body));
await measure("sign request (noble seed key)", 2000, request(seedKey));
await measure("sign request (WebCrypto key)", 2000, request(webKey));
await measure("verify response (hash + WebCrypto Ed25519)", 2000, () => verifyResponse(response, "r-1", server.publicKey));
const input = responseSigningInput(fields);
for (const engine of ["webcrypto", "noble"]) {
  await measure(`  the signature alone, ${engine}`, 2000, () => verifySignature(server.publicKey, input, response.signature, { engine }));
}
await measure("decode lobby.my.games.list, 20 games", 20000, () => decodeResponse("lobby.my.games.list", responsePayload));
