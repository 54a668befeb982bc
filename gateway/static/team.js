"use strict";
// Team pipelines (@team): one card per team, drawn from GET /teams/{id}, the TeamView the log folds
// to, so the live card and the card as it stood at a past log position (the time-travel slider,
// `?at=`) are one drawing. Live, every persisted team frame asks for the view again (one request at
// a time, the last frame's answer wins); streamed chunks, which the log never holds, are drawn over
// the last view until the recorded result or synthesis replaces them. `teams` is reset per session.
let teams = {};

const STATES = {pending: "pending", running: "running", review: "in review", done: "done", failed: "failed"};

function teamFormed(d, f) {
  const card = bubble("team", "");
  card.setAttribute("role", "region");
  card.setAttribute("aria-label", "Team: " + d.task);
  const team = teams[d.team_id] = {card, id: d.team_id, positions: [], at: null, results: {}, synthesis: {}, view: null, asked: null};
  team.body = el(card, "div");
  el(team.body, "h2", "", "👥 " + d.task);
  timeTravel(team, `/teams/${encodeURIComponent(team.id)}`, (view) => drawTeam(team, view));
  teamEvent(team, f.position);
}

// A persisted frame of the team: one more stop of the slider, and the live view asked for again.
function teamEvent(team, position) {
  if (position) team.positions.push(position);
  team.travel();
  const asked = team.asked = (team.asked || Promise.resolve()).then(async () => {
    const view = await api(`/teams/${encodeURIComponent(team.id)}`);
    if (team.asked === asked) { team.view = view; if (team.at === null) drawTeam(team, view); }
  });
}

function phaseState(p) {
  if (p.status === "failed") return "failed";
  if (p.status === "completed") return "done";
  if (p.status === "running" && p.results.length > p.reviews.length) return "review";
  return p.status === "running" ? "running" : "pending";
}

function drawTeam(team, view) {
  if (!view) return;
  const live = team.at === null;
  const box = team.body;
  box.replaceChildren();
  const members = Object.fromEntries(view.experts.map((x) => [x.name, x]));
  const colour = (name) => (members[name] || {}).color || "";
  el(box, "h2", "", "👥 " + view.task);
  const status = {executing: "working", completed: "completed", failed: "failed", cancelled: "cancelled"}[view.status] || "…";
  el(box, "div", "progress status", `${status}${view.ending && view.ending.reason ? " · " + view.ending.reason : ""}` +
    (view.revision > 1 ? ` · plan revision ${view.revision}` : ""));
  team.card.classList.toggle("ended", view.status !== "executing" && view.status !== "unknown");
  team.card.classList.toggle("stopped", view.status === "failed" || view.status === "cancelled");
  const chips = el(box, "div");
  for (const x of view.experts) {
    const chip = el(chips, "span", "chip", `${x.avatar} ${x.name}${x.role === "lead" ? " · lead" : ""}`.trim());
    chip.style.borderColor = chip.style.color = x.color;
    chip.title = x.persona;
  }
  for (const i of view.interventions) el(box, "div", "line you", `🗣 you: ${i.content} (taken into account)`);
  for (const r of view.replans) el(box, "div", "line warn", `↻ replanned (${r.trigger.replace("_", " ")}): ${r.reason}`);
  for (const r of view.risks.filter((r) => !r.phase_id)) el(box, "div", "line warn", `⚠ ${r.severity} risk: ${r.risk}`);

  const names = Object.fromEntries([...view.plan, ...view.off_plan].map((p) => [p.id, p.name]));
  const counts = {};
  for (const p of view.plan) counts[phaseState(p)] = (counts[phaseState(p)] || 0) + 1;
  el(box, "div", "progress", Object.keys(STATES).filter((k) => counts[k]).map((k) => `${counts[k]} ${STATES[k]}`).join(" · "));
  // A row per step of the plan: a phase sits one row below the last phase it depends on, so the
  // phases that run at the same time are side by side and every dependency points up.
  const level = {};
  const depth = (p, seen = new Set()) => {
    if (level[p.id] !== undefined) return level[p.id];
    seen.add(p.id);
    const deps = p.depends_on.map((id) => view.plan.find((q) => q.id === id)).filter((q) => q && !seen.has(q.id));
    return (level[p.id] = deps.length ? 1 + Math.max(...deps.map((q) => depth(q, seen))) : 0);
  };
  const board = el(box, "div", "phases");
  board.setAttribute("aria-label", "Phases");
  const rows = [];
  for (const p of view.plan) {
    const n = depth(p);
    while (rows.length <= n) rows.push(el(board, "div", "phase-row"));
  }
  for (const p of view.plan) {
    const state = phaseState(p);
    const card = el(rows[depth(p)], "article", "phase " + state);
    card.dataset.state = state;
    card.setAttribute("aria-label", `${p.name}: ${STATES[state]}`);
    el(card, "span", "badge " + state, STATES[state]);
    card.style.setProperty("--c", colour(p.expert_name || p.assignee));
    el(card, "div", "name", p.name);
    el(card, "div", "line", `${(members[p.expert_name || p.assignee] || {}).avatar || ""} ${p.expert_name || p.assignee}`.trim());
    if (p.depends_on.length) el(card, "div", "line", "after " + p.depends_on.map((id) => names[id] || id).join(", "));
    if (p.goal) el(card, "div", "line", p.goal);
    for (const s of p.steps.slice(-3)) el(card, "div", "line", "· " + s.content);
    for (const h of p.handoffs) el(card, "div", "line", `⇢ from ${h.from_expert} (${names[h.from_phase_id] || h.from_phase_id})`);
    const streaming = live && team.results[p.id];
    const result = p.results[p.results.length - 1];
    if (streaming) el(card, "div", "result answer typing").innerHTML = markdown(Object.values(streaming).join(""));
    else if (result) {
      const details = el(card, "details");
      el(details, "summary", "", `result${p.results.length > 1 ? ` (attempt ${result.attempt})` : ""}`);
      el(details, "div", "result answer").innerHTML = markdown(result.content);
    }
    for (const r of p.reviews) {
      el(card, "div", r.verdict === "accept" ? "line good" : "line warn",
        r.verdict === "accept" ? `✔ accepted by ${r.reviewer}` : `↻ revise (${r.reviewer}): ${r.reasons.join("; ")}`);
    }
    for (const r of view.risks.filter((r) => r.phase_id === p.id)) el(card, "div", "line warn", `⚠ ${r.severity} risk: ${r.risk}`);
    if (p.failure) el(card, "div", "line bad", "✖ " + p.failure);
  }
  for (const p of view.off_plan) {
    const card = el(board, "article", "phase dropped");
    el(card, "div", "name", p.name);
    el(card, "div", "line", "dropped by a new plan" + (p.failure ? ": " + p.failure : ""));
  }
  const streamed = live && Object.values(team.synthesis).join("");
  if (view.synthesis || streamed) {
    const section = el(box, "section", "conclusion");
    section.setAttribute("aria-label", "Synthesis");
    el(section, "h3", "", "✎ Synthesis");
    el(section, "div", "answer" + (view.synthesis ? "" : " typing")).innerHTML = markdown(view.synthesis ? view.synthesis.content : streamed);
  }
}

// Chunks are kept per segment (one attempt), so a reset removes exactly what that attempt sent.
function streamInto(team, store, segment, content) {
  store[segment] = (store[segment] || "") + content;
  if (team.at === null) drawTeam(team, team.view);
}

function dropSegment(team, store, segment) {
  delete store[segment];
  if (team.at === null) drawTeam(team, team.view);
}

const teamFrames = {
  team_formed: null,  // teamFormed: it creates the card the others need
  expert_result_chunk(team, d) { streamInto(team, team.results[d.phase_id] = team.results[d.phase_id] || {}, d.segment, d.content); },
  expert_result_chunk_reset(team, d) { dropSegment(team, team.results[d.phase_id] || {}, d.segment); },
  team_synthesis_chunk(team, d) { streamInto(team, team.synthesis, d.segment, d.content); },
  team_synthesis_chunk_reset(team, d) { dropSegment(team, team.synthesis, d.segment); },
  // The recorded result replaces what its attempt streamed.
  expert_result(team, d, f) { delete team.results[d.phase_id]; teamEvent(team, f.position); },
  team_synthesis(team, d, f) { team.synthesis = {}; teamEvent(team, f.position); },
  // Every other persisted team event changes the view: ask for it again.
  plan_update: persisted,
  replanning: persisted,
  phase_started: persisted,
  expert_step: persisted,
  review_result: persisted,
  risk_flagged: persisted,
  collaboration_notice: persisted,
  phase_completed: persisted,
  phase_failed: persisted,
  team_dissolved: persisted,
  plan_step: persisted,
  collaboration_contract_defined: persisted,
};

function persisted(team, d, f) { teamEvent(team, f.position); }

// Text the user sent while the team ran: the view holds it once it is recorded.
function teamIntervention(d, position) {
  const team = teams[d.target_id];
  if (!team) return false;
  if (position) teamEvent(team, position);
  return true;
}
