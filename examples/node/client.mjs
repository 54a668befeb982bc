// A service speaking to agentbus over NATS alone (the `nats` package from npm); see docs/bus.md.
//
// It creates a session, follows the session's live subject, publishes one chat
// message twice with one idempotency key (JetStream stores it once), waits for
// the assistant's answer, then catches up over the events request and checks
// that the log holds the user message once. The last line it prints is a JSON
// summary; it exits 1 when a check fails.
//
//   npm ci && AGENTBUS_NATS_URL=nats://127.0.0.1:4222 node client.mjs "hello"
//
// Without AGENTBUS_NATS_URL it reads .agentbus/endpoints.json (what `make run`
// writes), then falls back to nats://127.0.0.1:4222. AGENTBUS_SUBJECT_PREFIX is
// the subject prefix (default `agentbus`). AGENTBUS_NATS_CREDENTIALS names the
// service's nkey seed file (the embedded NATS of `make run` lets in no one
// without one: endpoints.json names the file it wrote for services); replies then
// come under the credential's own inbox, `_INBOX.<its public key>`, the only one
// the server lets it read. It signs what it publishes with that seed (docs/bus.md,
// *Who a command acts for*; the `nkeys` that `nats` exports, no other package),
// so its commands act as the service the workers know that key by
// (AGENTBUS_SERVICE_KEYS), whatever principal they claim.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { connect, headers, JSONCodec, nkeyAuthenticator, nkeys } from "nats";

const TIMEOUT_MS = 30_000; // to wait for the answer
const jc = JSONCodec();

function natsUrl() {
  if (process.env.AGENTBUS_NATS_URL) return process.env.AGENTBUS_NATS_URL;
  const endpoints = join(process.env.AGENTBUS_DATA_DIR || ".agentbus", "endpoints.json");
  if (existsSync(endpoints)) return JSON.parse(readFileSync(endpoints, "utf8")).nats_url;
  return "nats://127.0.0.1:4222";
}

// A reader of the service's nkey seed (its bytes), if a seed file is named (or `make run`'s endpoints.json names one).
function seedFile() {
  let path = process.env.AGENTBUS_NATS_CREDENTIALS;
  const endpoints = join(process.env.AGENTBUS_DATA_DIR || ".agentbus", "endpoints.json");
  if (!path && !process.env.AGENTBUS_NATS_URL && existsSync(endpoints)) {
    path = JSON.parse(readFileSync(endpoints, "utf8")).nats_credentials;
  }
  return path ? () => new TextEncoder().encode(readFileSync(path, "utf8").trim()) : null;
}

const seed = seedFile();

// The connect options for the seed, if there is one: the seed, and the inbox it owns.
function credentialOptions() {
  if (!seed) return {};
  const publicKey = nkeys.fromSeed(seed()).getPublicKey();
  return { authenticator: nkeyAuthenticator(seed()), inboxPrefix: `_INBOX.${publicKey}` };
}

// The headers that prove this service published `data` on `subject`: ed25519 over the subject, a newline, the
// bytes. Without a seed, none: the command then acts as the anonymous service `service`.
function signed(subject, data, h = headers()) {
  if (!seed) return h;
  const keys = nkeys.fromSeed(seed());
  const text = new TextEncoder().encode(`${subject}\n`);
  const message = new Uint8Array(text.length + data.length);
  message.set(text);
  message.set(data, text.length);
  h.set("Agentbus-Signer-Key", keys.getPublicKey());
  h.set("Agentbus-Signature", Buffer.from(keys.sign(message)).toString("base64"));
  return h;
}

// Send a request (signed) and return its reply; an `error` reply ends the program.
async function request(nc, subject, body) {
  const data = jc.encode(body);
  const msg = await nc.request(subject, data, { timeout: 5000, headers: signed(subject, data) });
  const reply = jc.decode(msg.data);
  if (reply.type === "error") throw new Error(`${subject}: ${reply.code}: ${reply.message}`);
  return reply;
}

// Every event of the session after `after`, page by page, from the log over the bus.
async function readEvents(nc, prefix, sessionId, after = 0) {
  const found = [];
  for (;;) {
    const page = await request(nc, `${prefix}.session.${sessionId}.events`, { after, limit: 100 });
    found.push(...page.events);
    after = page.next_after;
    if (!page.more) return found;
  }
}

async function main(text, key) {
  const prefix = process.env.AGENTBUS_SUBJECT_PREFIX || "agentbus";
  const nc = await connect({ servers: natsUrl().split(","), name: "agentbus-example-node", ...credentialOptions() });
  try {
    // 1. Create a session (request/reply; any worker answers), signed: it is created as this service's.
    const ready = await request(nc, `${prefix}.sessions.create`, { type: "create_session", agent_name: "assistant" });
    const sessionId = ready.session_id;
    console.log(`session ${sessionId} created at position ${ready.position}`);

    // 2. Follow the session before sending, so nothing said after the send is missed.
    const sub = nc.subscribe(`${prefix}.session.${sessionId}.evt`);
    await nc.flush();

    // 3. Publish one message twice with one key: JetStream keeps the first, acks the second as a duplicate.
    const js = nc.jetstream();
    const subject = `${prefix}.session.${sessionId}.cmd`;
    const command = jc.encode({ type: "send_message", content: text, idempotency_key: key });
    const acks = [];
    for (let i = 0; i < 2; i++) {
      const h = headers();
      h.set("Nats-Msg-Id", `${sessionId}:${key}`);
      const ack = await js.publish(subject, command, { headers: signed(subject, command, h) });
      acks.push({ sequence: ack.seq, duplicate: Boolean(ack.duplicate) });
    }
    console.log(`published twice: ${JSON.stringify(acks)}`);

    // 4. Follow the live subject to the answer (events carry `position`; frames do not).
    const timer = setTimeout(() => sub.unsubscribe(), TIMEOUT_MS);
    const seen = new Set();
    let messageId = null;
    let answer = null;
    for await (const msg of sub) {
      const item = jc.decode(msg.data);
      if (item.type === "command_refused" && (item.idempotency_key ?? key) === key) throw new Error(`refused: ${item.code}: ${item.message}`);
      if (item.type === "event_omitted") {
        seen.add(item.position); // too big for NATS: the events request has it
        continue;
      }
      if (item.type !== "event" || seen.has(item.position)) continue; // a frame (token, …), or an event again
      seen.add(item.position);
      const event = item.event;
      if (event.type === "user_message" && event.idempotency_key === key) {
        messageId = event.message_id;
      } else if (event.type === "assistant_message" && messageId && event.reply_to === messageId) {
        answer = event.content;
        break;
      } else if (event.type === "message_failed" && messageId && event.reply_to === messageId) {
        throw new Error(`no answer: ${event.code}: ${event.reason}`);
      }
    }
    clearTimeout(timer);
    if (answer === null) throw new Error(`no answer within ${TIMEOUT_MS / 1000}s`);
    sub.unsubscribe();
    console.log(`answer: ${answer}`);

    // 5. Catch up over the bus, as a service that reconnects does: the log holds the message once.
    const events = await readEvents(nc, prefix, sessionId);
    const recorded = events.filter((e) => e.event.type === "user_message" && e.event.idempotency_key === key);
    console.log(`the log holds ${events.length} events of the session; ${recorded.length} user message with key '${key}'`);
    const positions = events.map((e) => e.position);
    const ok =
      acks.map((a) => a.duplicate).join() === "false,true" &&
      recorded.length === 1 &&
      positions.every((p, i) => i === 0 || p > positions[i - 1]) &&
      [...seen].every((p) => positions.includes(p));
    const summary = {
      ok,
      session_id: sessionId,
      acks,
      answer,
      user_messages: recorded.length,
      acted_as: recorded.length ? (recorded[0].event.principal ?? null) : null,
      events: events.length,
      live_events: seen.size,
    };
    console.log(JSON.stringify(summary));
    return ok ? 0 : 1;
  } finally {
    await nc.drain();
  }
}

const args = process.argv.slice(2);
const keyAt = args.indexOf("--key");
const key = keyAt >= 0 ? args.splice(keyAt, 2)[1] : `example-${randomUUID().slice(0, 8)}`;
const text = args[0] ?? "hello from a Node.js service";
main(text, key).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err.message ?? err);
    process.exit(1);
  },
);
