"use strict";
// The chat page: sessions, the socket (with reconnect), and the conversation drawn from its frames.
// The socket replays the session's log after `?after=`, so one code path draws history and live.

const API = "/api/v1/chat";
const $ = (id) => document.getElementById(id);
const log = $("log"), text = $("text");
const urlKey = new URLSearchParams(location.search).get("api_key");

// ---- Credentials: the URL's ?api_key= (as before), or what the user signed in with, kept across reloads.
const credential = () => urlKey || localStorage.getItem("agentbus.token") || "";
// A JWT (three dot-separated parts) goes as ?token=, anything else is an API key.
const isJwt = (c) => c.split(".").length === 3;

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = {"Content-Type": "application/json"};
  if (credential()) headers.Authorization = "Bearer " + credential();
  const response = await fetch(API + path, {...options, headers});
  if (response.status === 401) { signIn(); throw new Unauthorized(path); }
  if (!response.ok) throw new Error(`${options.method || "GET"} ${path}: ${response.status}`);
  return response.json();
}

function signIn(message) {
  const dialog = $("signin");
  $("signin-error").textContent = message || (localStorage.getItem("agentbus.token") ? "That credential was refused." : "");
  if (!dialog.open) dialog.showModal();
}

$("signin-form").onsubmit = () => {
  localStorage.setItem("agentbus.token", $("token").value.trim());
  $("signout").hidden = false;
  start();
};
$("signout").onclick = () => { localStorage.removeItem("agentbus.token"); location.reload(); };
$("signout").hidden = !localStorage.getItem("agentbus.token");

// ---- Markdown: marked's HTML, then DOMPurify, so a model's or a user's text can never run script.
function markdown(source) {
  return DOMPurify.sanitize(marked.parse(source || "", {gfm: true, breaks: true}));
}

function el(parent, tag, cls, text) {
  const e = parent.appendChild(document.createElement(tag));
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function bubble(cls, content) {
  log.querySelector(".empty")?.remove();
  const div = document.createElement("div");
  div.className = "msg " + cls;
  if (content) div.textContent = content;
  log.appendChild(div);
  return div;
}

// ---- Sessions in the sidebar.
let sessionId = null;

let listing = 0;
async function listSessions() {
  const q = $("search").value.trim();
  const asked = ++listing;
  const list = await api("/sessions" + (q ? "?q=" + encodeURIComponent(q) : ""));
  if (asked !== listing) return;  // a later request is on its way: its answer is the newer
  list.sort((a, b) => b.updated_at.localeCompare(a.updated_at));
  const ul = $("sessions");
  ul.replaceChildren();
  for (const s of list) {
    const li = el(ul, "li", s.status === "closed" ? "closed" : "");
    li.dataset.id = s.session_id;
    li.setAttribute("aria-current", String(s.session_id === sessionId));
    const open = el(li, "button", "open");
    open.type = "button";
    // The read model may not hold the first message yet: the page knows it already.
    const title = s.title || (s.session_id === sessionId && firstMessage) || "New chat";
    el(open, "span", "title", title);
    el(open, "span", "sub", `${s.agent_name} · ${s.updated_at.slice(0, 16).replace("T", " ")}${s.status === "closed" ? " · closed" : ""}`);
    open.onclick = () => { location.hash = s.session_id; closeDrawer(); };
    const rename = el(li, "button", "tool", "✎");
    Object.assign(rename, {type: "button", title: "Rename"});
    rename.setAttribute("aria-label", "Rename " + title);
    rename.onclick = () => renameSession(li, s);
    if (s.status !== "closed") {
      const close = el(li, "button", "tool", "✕");
      Object.assign(close, {type: "button", title: "Close"});
      close.setAttribute("aria-label", "Close " + title);
      close.onclick = async () => { await api(`/sessions/${s.session_id}`, {method: "DELETE"}); listSessions(); };
    }
  }
}

function renameSession(li, s) {
  const input = document.createElement("input");
  input.value = s.title || "";
  input.setAttribute("aria-label", "New title");
  li.replaceChildren(input);
  input.focus();
  input.onkeydown = async (e) => {
    if (e.key === "Escape") listSessions();
    if (e.key !== "Enter" || !input.value.trim()) return;
    await api(`/sessions/${s.session_id}`, {method: "PATCH", body: JSON.stringify({title: input.value.trim()})});
    await listSessions();
    if (s.session_id === sessionId) $("heading").textContent = input.value.trim();
  };
  input.onblur = () => listSessions();
}

async function loadAgents() {
  const agents = await api("/agents");
  $("agent").replaceChildren(...agents.map((a) => {
    const option = new Option(a.name, a.name);
    option.title = a.description;
    return option;
  }));
}

$("new").onclick = async () => {
  // Until the new session is open, nothing typed may go to the one on screen.
  text.disabled = true;
  $("status-dot").className = "";
  let s;
  try {
    s = await api("/sessions", {method: "POST", body: JSON.stringify({agent_name: $("agent").value || "assistant"})});
  } finally {
    text.disabled = !sessionId;  // back as it was, unless the new session opens below
  }
  // Opened at once, not on the hashchange to come: what is typed next belongs to the new session.
  openSession(s.session_id);
  location.hash = s.session_id;
  closeDrawer();
  listSessions();
};
let searching = null;
$("search").oninput = () => { clearTimeout(searching); searching = setTimeout(listSessions, 250); };

function closeDrawer() { $("sidebar").classList.remove("open"); $("menu").setAttribute("aria-expanded", "false"); }
$("menu").onclick = () => {
  const open = $("sidebar").classList.toggle("open");
  $("menu").setAttribute("aria-expanded", String(open));
  if (open) $("search").focus();
};
document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeDrawer(); });

// ---- The socket: reconnect with ?after=<last position> and back-off; frames at or before the last
// position are dropped, so a replay after a reconnect never draws a bubble twice.
let socket = null, lastPosition = 0, retries = 0, retryTimer = null;
// Messages typed but not yet recorded, by idempotency key: sent (again) on every (re)connect, under
// the same key, so the session takes each once; the recorded user_message confirms its bubble.
let outbox = new Map();

function connect() {
  clearTimeout(retryTimer);
  const params = new URLSearchParams({after: String(lastPosition)});
  const c = credential();
  if (c) params.set(isJwt(c) ? "token" : "api_key", c);
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${API}/ws/${sessionId}?${params}`);
  socket = ws;
  ws.onopen = () => {
    retries = 0;
    setOnline(true);
    for (const [key, content] of outbox) ws.send(JSON.stringify({type: "message", content, idempotency_key: key}));
  };
  ws.onmessage = (e) => { if (socket === ws) follow(() => onFrame(JSON.parse(e.data))); };
  ws.onclose = (e) => {
    if (socket !== ws) return;  // a socket this page replaced (another session opened)
    socket = null;
    if (e.code === 4001) { setOnline(false, "Not signed in."); signIn("Sign in to open this session."); return; }
    if (e.code === 1000 || e.code === 1008) { setOnline(false, "This session is closed."); text.disabled = true; return; }
    // Back-off: 0.5 s, 1 s, 2 s, … at most 5 s, a little random so that many pages do not come back at once.
    const delay = Math.min(5000, 500 * 2 ** retries++) * (0.8 + Math.random() * 0.4);
    setOnline(false, `Connection lost. Reconnecting in ${Math.round(delay / 100) / 10} s…`);
    retryTimer = setTimeout(connect, delay);
  };
}

let offline = "Not connected.";
function setOnline(online, message) {
  if (message) offline = message;
  const dot = $("status-dot");
  dot.className = online ? "online" : "offline";
  dot.setAttribute("aria-label", online ? "connected" : "not connected");
  const pending = outbox.size ? ` ${outbox.size} unsent message${outbox.size > 1 ? "s" : ""} will be sent when it is back.` : "";
  $("banner").hidden = online;
  $("banner-text").textContent = online ? "" : offline + pending;
}
$("retry").onclick = () => { if (!socket) connect(); };

function send(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(frame)); return true; }
  return false;
}

// ---- Opening a session (by #id, without a reload).
// What the open session's frames drew, by id; reset when another session opens.
let turns = {}, pendingUser = {}, calls = {}, asks = {}, confirms = {}, interventions = {};
let waiting = new Set(), firstMessage = null;

async function openSession(id) {
  if (id === sessionId) return;
  clearTimeout(retryTimer);
  if (socket) { const old = socket; socket = null; old.close(); }
  sessionId = id; lastPosition = 0; retries = 0;
  $("status-dot").className = "";  // connecting: neither online nor lost
  $("banner").hidden = true;
  turns = {}; pendingUser = {}; calls = {}; asks = {}; confirms = {}; interventions = {};
  waiting = new Set(); firstMessage = null; teams = {}; boards = {}; outbox = new Map();
  log.replaceChildren();
  busy();
  text.disabled = false;
  $("send").disabled = false;
  for (const li of $("sessions").children) li.setAttribute("aria-current", String(li.dataset.id === id));
  const current = document.querySelector(`#sessions li[data-id="${CSS.escape(id)}"] .title`);
  $("heading").textContent = current ? current.textContent : "agentbus";
  connect();
  text.focus();
}

window.addEventListener("hashchange", () => { if (location.hash.length > 1) openSession(location.hash.slice(1)); });

// ---- The composer: Enter sends, Shift+Enter breaks the line; it grows with its text.
text.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
});
text.addEventListener("input", () => { text.style.height = "auto"; text.style.height = Math.min(text.scrollHeight, 192) + "px"; });

$("composer").onsubmit = (e) => {
  e.preventDefault();
  const content = text.value.trim();
  if (!content || !sessionId) return;
  const key = crypto.randomUUID();
  outbox.set(key, content);
  pendingUser[key] = follow(() => {
    const b = bubble("user pending", content);
    el(b, "span", "note", "sending…");
    return b;
  }, true);
  if (!send({type: "message", content, idempotency_key: key})) setOnline(false);
  text.value = "";
  text.style.height = "auto";
  text.focus();
};
$("stop").onclick = () => { send({type: "cancel"}); text.focus(); };

// Messages waiting for their answer (by message id): while any does, the Stop button shows.
function busy() {
  $("stop").hidden = waiting.size === 0;
  log.setAttribute("aria-busy", String(waiting.size > 0));
}

// The view follows the stream unless the reader scrolled up (or `force`: the user's own message).
function follow(draw, force) {
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
  const result = draw();
  if (atEnd || force) log.scrollTop = log.scrollHeight;
  return result;
}

// ---- A turn: its steps folded above the answer, which streams as Markdown.
function turnOf(id) {
  if (turns[id]) return turns[id];
  const div = bubble("assistant", "");
  const steps = el(div, "details", "steps");
  steps.hidden = true;
  const summary = el(steps, "summary", "", "");
  const answer = el(div, "div", "answer typing");
  const turn = turns[id] = {div, steps, summary, count: 0, answer, segments: {}, text: ""};
  return turn;
}

function step(turn, cls, label, detail) {
  turn.steps.hidden = false;
  turn.count += 1;
  turn.summary.textContent = `${turn.count} step${turn.count > 1 ? "s" : ""} · tools and thinking`;
  const div = el(turn.steps, "div", "step " + cls, label);
  if (detail) el(div, "pre", "", detail);
  return div;
}

// A question or a confirmation comes before the answer it leads to.
function beforeAnswer(turn, cls) {
  const box = document.createElement("div");
  box.className = cls;
  return turn.div.insertBefore(box, turn.answer);
}

function pretty(json) {
  try { return JSON.stringify(JSON.parse(json), null, 2); } catch { return json; }
}

let drawing = null;
function drawStream(turn) {
  // Tokens come faster than Markdown needs redrawing: once per frame is enough.
  if (drawing) return;
  drawing = requestAnimationFrame(() => {
    drawing = null;
    for (const t of Object.values(turns)) if (t.streaming) t.answer.innerHTML = markdown(Object.values(t.segments).join(""));
  });
  turn.streaming = true;
}

function answer(turn, content, agent) {
  turn.streaming = false;
  turn.answer.classList.remove("typing");
  turn.answer.innerHTML = markdown(content);
  if (agent && agent !== "assistant") turn.div.dataset.agent = agent;
}

function onFrame(f) {
  if (f.position) {
    if (f.position <= lastPosition) return;  // already drawn: a replay after a reconnect
    lastPosition = f.position;
  }
  const d = f.data || {};
  if (boardFrame(f)) return;
  if (Object.hasOwn(teamFrames, f.type)) {
    if (f.type === "team_formed") teamFormed(d, f);
    else if (teams[d.team_id]) teamFrames[f.type](teams[d.team_id], d, f);
    return;
  }
  const turnId = f.turn_id || d.turn_id || "?";
  switch (f.type) {
    case "connected": case "pong": break;
    case "user_message": userMessage(d); break;
    case "token": {
      const turn = turnOf(turnId);
      const segment = d.segment || "";
      turn.segments[segment] = (turn.segments[segment] || "") + f.content;
      drawStream(turn);
      break;
    }
    case "token_reset": {
      const turn = turnOf(turnId);
      delete turn.segments[d.segment || ""];
      drawStream(turn);
      break;
    }
    case "thinking": {
      // The reasoning before a tool call was streamed as tokens; it is shown once, as thinking.
      const turn = turnOf(turnId);
      turn.segments = {};
      turn.answer.replaceChildren();
      step(turn, "", "💭 " + f.content);
      break;
    }
    case "step": stepFrame(turnOf(turnId), d); break;
    case "skill_match": step(turnOf(turnId), "", `🎯 skill ${d.skill} (${d.method})`); break;
    case "phase_changed": step(turnOf(turnId), "", `⏭ phase: ${d.previous || "start"} → ${d.phase || "end"}`); break;
    case "phase_violation": step(turnOf(turnId), "warn", `⚠ ${d.tool} is not allowed in phase ${d.phase}: ${d.message}`); break;
    case "ask_human": askHuman(turnOf(turnId), d); break;
    case "confirmation_request": confirmation(turnOf(turnId), d); break;
    case "confirmation_result": resolved(d); break;
    case "final_answer": {
      if (d.agent_name === "board_meeting") {
        // The board's card above already shows what this answer says: fold it.
        const details = el(bubble("assistant", ""), "details");
        el(details, "summary", "", "The answer as text");
        el(details, "div", "answer").innerHTML = markdown(f.content);
      } else answer(turnOf(turnId), f.content, d.agent_name);
      settle(d.reply_to);
      break;
    }
    case "message_failed": settle(d.reply_to); break;
    case "error": {
      const turn = turns[turnId];
      if (turn) { turn.streaming = false; turn.answer.classList.remove("typing"); }
      const div = bubble("error", d.message || "error");
      div.setAttribute("role", "alert");
      if (teams[d.team_id]) teamEvent(teams[d.team_id], null);  // a cancelled or failed team ends with this frame
      if (d.code === "board_failed" && runningBoard()) boardEnded(runningBoard(), "failed", d.message);
      if (d.code === "unknown_session") text.disabled = true;
      break;
    }
    case "result": {
      const turn = turns[d.turn_id];
      if (turn) { turn.streaming = false; turn.answer.classList.remove("typing"); }
      if (d.board_id && boards[d.board_id]) boardEnded(boards[d.board_id], "cancelled");
      bubble("meta", "⏹ stopped");
      break;
    }
    case "team_intervention_ack": case "user_intervention": intervention(d, f.position); break;
    case "command_refused": bubble("error", d.message || "refused"); break;
  }
}

function userMessage(d) {
  const key = d.idempotency_key;
  outbox.delete(key);
  if (!outbox.size && socket) setOnline(true);
  const mine = pendingUser[key];
  delete pendingUser[key];
  if (mine) { mine.classList.remove("pending"); mine.querySelector(".note")?.remove(); }
  else bubble("user", d.shown || d.content);
  waiting.add(d.message_id);
  busy();
  if (!firstMessage) {
    firstMessage = d.shown || d.content;  // the first message titles the session: refresh the list once
    listSessions().then(() => {
      const title = document.querySelector("#sessions li[aria-current=true] .title");
      if (title) $("heading").textContent = title.textContent;
    });
  }
}

function settle(messageId) {
  if (messageId) waiting.delete(messageId);
  else waiting.clear();
  busy();
}

function stepFrame(turn, d) {
  const inner = d.data || {};
  switch (d.event_type) {
    case "tool_call": case "tool_called":
      calls[inner.call_id] = inner;
      step(turn, "", `🔧 ${inner.tool}`, pretty(inner.arguments));
      break;
    case "tool_result": step(turn, inner.is_error ? "warn" : "", `↳ ${inner.tool} answered`, inner.content); break;
    case "human_replied": answered(inner.request_id, inner.content); break;
  }
}

// ---- ask_human: an inline reply box; once answered (live or in replayed history) only the answer shows.
function askHuman(turn, d) {
  const box = beforeAnswer(turn, "ask");
  box.setAttribute("role", "group");
  const title = el(box, "h3", "", "❓ " + d.question);
  title.id = "ask-" + d.request_id;
  box.setAttribute("aria-labelledby", title.id);
  asks[d.request_id] = box;
  if (expired(d)) { el(box, "div", "outcome muted", "Not answered in time."); return; }
  const form = el(box, "form");
  const input = el(form, "input");
  input.setAttribute("aria-labelledby", title.id);
  input.placeholder = "Your answer (Enter sends)";
  const button = el(form, "button", "primary", "Reply");
  form.onsubmit = (e) => {
    e.preventDefault();
    if (!input.value.trim() || !send({type: "reply", request_id: d.request_id, content: input.value})) return;
    input.disabled = button.disabled = true;
    text.focus();
  };
  if (document.activeElement === text && !text.value) input.focus();
}

function answered(requestId, content) {
  const box = asks[requestId];
  if (!box) return;
  const hadFocus = box.contains(document.activeElement);
  box.querySelector("form")?.remove();
  if (hadFocus) text.focus();  // the reply box goes: the keyboard goes back to the composer
  box.querySelector(".outcome")?.remove();
  el(box, "div", "outcome good", "You answered: " + content);
}

const expired = (d) => d.expires_at && Date.parse(d.expires_at) < Date.now();

// ---- Confirmations: what will happen, the arguments readable, a destructive action styled as such.
const DESTRUCTIVE = /delete|remove|erase|drop|destroy|kill|write|move|overwrite/i;

function confirmation(turn, d) {
  const call = calls[d.call_id] || {};
  const tool = call.tool || d.command;
  const destructive = DESTRUCTIVE.test(tool || "") || DESTRUCTIVE.test(d.command || "");
  const box = beforeAnswer(turn, "confirm" + (destructive ? " destructive" : ""));
  box.setAttribute("role", "alertdialog");
  const title = el(box, "h3", "", `${destructive ? "⚠ " : ""}Allow ${tool}?`);
  title.id = "confirm-" + d.confirmation_id;
  box.setAttribute("aria-labelledby", title.id);
  const reason = el(box, "p", "", d.reason || "");
  reason.id = title.id + "-why";
  box.setAttribute("aria-describedby", reason.id);
  if (call.arguments) el(box, "pre", "", pretty(call.arguments));
  else if (d.command) el(box, "pre", "", d.command);
  if (destructive) el(box, "p", "meta", "This cannot be undone.");
  confirms[d.confirmation_id] = box;
  if (expired(d)) { el(box, "div", "outcome muted", "Expired: not run."); return; }
  const actions = el(box, "div", "actions");
  const yes = el(actions, "button", destructive ? "danger" : "primary", destructive ? `Yes, ${tool}` : "Allow");
  const no = el(actions, "button", "", "Don't");
  for (const [button, approved] of [[yes, true], [no, false]]) {
    button.type = "button";
    button.onclick = () => {
      if (!send({type: "confirmation_reply", confirmation_id: d.confirmation_id, approved})) return;
      yes.disabled = no.disabled = true;
      text.focus();
    };
  }
}

function resolved(d) {
  const box = confirms[d.confirmation_id];
  if (!box) return;
  box.querySelector(".actions")?.remove();
  const [cls, words] = d.timed_out ? ["muted", "Expired: not run."] : d.approved ? ["good", "✔ Approved"] : ["bad", "✖ Denied: not run."];
  el(box, "div", "outcome " + cls, words);
}

// Text the user sent while a board or team ran. Live the ack (with the text) comes first and the
// persisted user_intervention follows; on reload only the latter is replayed: draw it once.
function intervention(d, position) {
  if (d.idempotency_key && pendingUser[d.idempotency_key]) {
    pendingUser[d.idempotency_key].remove();  // drawn in the board's or team's card instead
    delete pendingUser[d.idempotency_key];
    outbox.delete(d.idempotency_key);
  }
  if (boardIntervention(d, position) || teamIntervention(d, position)) return;
  const key = d.target_id + "\n" + d.content;
  if (interventions[key]) return;
  interventions[key] = bubble("user", d.content);
  bubble("meta", "intervention taken into account");
}

// ---- Start: agents and sessions (asking to sign in if the gateway wants a credential), then #id.
async function start() {
  try {
    await Promise.all([loadAgents(), listSessions()]);
  } catch (error) {
    if (error instanceof Unauthorized) return;
    throw error;
  }
  if (location.hash.length > 1) {
    const id = location.hash.slice(1);
    sessionId = null;  // a sign-in reopens the session with the new credential
    openSession(id);
  }
}
start();
