"use strict";
// Team pipelines (@team): one card per team, updated in place by its frames. The socket replays the
// session's log first, so on reload the same persisted frames draw the same card; only the streamed
// chunks are live-only, and the final result replaces them anyway. `teams` is reset per open session.
let teams = {};

function el(parent, tag, cls, text) {
  const e = parent.appendChild(document.createElement(tag));
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function colourOf(team, name) { return (team.members[name] || {}).color || "#888"; }

function setWho(team, chip, name, color) {
  chip.textContent = `${(team.members[name] || {}).avatar || ""} ${name}`.trim();
  chip.style.borderColor = chip.style.color = color || colourOf(team, name);
}

function setBadge(ph, status) { ph.status = status; ph.badge.className = "badge " + status; ph.badge.textContent = status; }

function teamFormed(d) {
  const card = bubble("team", "");
  const team = teams[d.team_id] = {card, members: {}, phases: {}, order: [], synthesis: null};
  for (const x of d.experts) team.members[x.name] = x;
  card.style.borderLeftColor = colourOf(team, d.lead_expert);
  const head = el(card, "div");
  el(head, "b", "", "👥 Team: " + d.task);
  team.status = el(head, "span", "meta status", " · working");
  const members = el(card, "div");
  for (const x of d.experts) {
    const chip = el(members, "span", "chip");
    setWho(team, chip, x.name, x.color);
    if (x.role === "lead") chip.textContent += " · lead";
    chip.title = x.persona;
  }
  team.notes = el(card, "div");  // interventions, risks of the whole team: above the plan they change
  team.caption = el(card, "div", "caption", "plan");
  team.plan = el(card, "div");
  drawPlan(team, d.plan_phases);
}

// The phase a frame is about; one the plan never listed is added rather than dropped.
function phaseOf(team, id, name) {
  if (team.phases[id]) return team.phases[id];
  const ph = team.phases[id] = {status: "pending", current: null};
  ph.el = el(team.plan, "div", "phase");
  const head = el(ph.el, "div");
  ph.badge = el(head, "span", "badge", "pending");
  ph.title = el(head, "b", "", name || id);
  el(head, "span", "", " ");
  ph.who = el(head, "span", "chip");
  ph.goal = el(ph.el, "div", "line");
  ph.body = el(ph.el, "div");  // steps, hand-offs, results, reviews, risks: in the order they happened
  team.order.push(id);
  return ph;
}

// Redraw the plan in its new order. Phases keep their element (badge, steps, results); a phase
// the new plan drops stays, struck through, where it was if it ran (the failed one), else goes.
function drawPlan(team, phases) {
  const order = phases.map((p) => p.id), names = {};
  for (const id of team.order) names[id] = team.phases[id].title.textContent;
  for (const p of phases) names[p.id] = p.name;
  team.order.forEach((id, i) => {
    const ph = team.phases[id];
    if (order.includes(id)) return;
    if (ph.status === "pending") { ph.el.remove(); delete team.phases[id]; return; }
    const before = team.order.slice(0, i).reverse().find((x) => order.includes(x));
    order.splice(before ? order.indexOf(before) + 1 : 0, 0, id);
    ph.el.classList.add("dropped");
  });
  for (const p of phases) {
    const ph = phaseOf(team, p.id, p.name);
    ph.title.textContent = p.name;
    if (ph.status === "pending") setWho(team, ph.who, p.assignee);
    ph.goal.textContent = p.goal + (p.depends_on.length ? `  (after ${p.depends_on.map((x) => names[x] || x).join(", ")})` : "");
  }
  team.order = order;
  for (const id of order) team.plan.appendChild(team.phases[id].el);
}

// Streamed text is kept per segment (one attempt), so a reset removes exactly what that attempt sent.
function stream(box, segment, content) {
  const span = [...box.children].find((s) => s.dataset.segment === segment) || el(box, "span");
  span.dataset.segment = segment;
  span.textContent += content;
}

// The box a phase's current attempt streams into; after a final result the next attempt gets a new one.
function resultBox(team, ph, expert, color) {
  if (!ph.current) {
    ph.current = el(ph.body, "div", "result");
    ph.current.style.borderColor = color || colourOf(team, expert);
  }
  return ph.current;
}

function synthesisBox(team) {
  if (!team.synthesis) {
    const details = el(team.card, "details");
    details.open = true;
    team.synthesisTitle = el(details, "summary", "", "✎ synthesis");
    team.synthesis = el(details, "div", "result");
    team.synthesis.style.borderColor = colourOf(team, Object.values(team.members).find((x) => x.role === "lead")?.name);
  }
  return team.synthesis;
}

// The reason a team stopped is in the error frame drawn below the card; the card only says how it ended.
function teamEnded(team, status) {
  team.card.classList.add("ended");
  if (status !== "completed") team.card.classList.add("stopped");
  team.status.textContent = " · " + status;
  for (const id of team.order) if (team.phases[id].status === "running" && status !== "completed") setBadge(team.phases[id], "stopped");
}

const teamFrames = {
  team_formed: null,  // teamFormed: it creates the card the others need
  plan_update(team, d) {
    drawPlan(team, d.plan_phases);
    team.caption.textContent = d.revision > 1 ? `plan · revision ${d.revision} · replanned: ${d.reason}` : "plan";
    team.caption.className = d.revision > 1 ? "caption warn" : "caption";
  },
  replanning(team, d) { team.caption.textContent = "plan · replanning: " + d.reason; team.caption.className = "caption warn"; },
  phase_started(team, d) {
    const ph = phaseOf(team, d.phase_id, d.phase_name);
    setBadge(ph, "running");
    setWho(team, ph.who, d.expert_name, d.expert_color);
  },
  expert_step(team, d) { el(phaseOf(team, d.phase_id).body, "div", "line", "· " + d.content); },
  expert_result_chunk(team, d) {
    stream(resultBox(team, phaseOf(team, d.phase_id), d.expert_name), d.segment, d.content);
  },
  expert_result_chunk_reset(team, d) {
    const ph = phaseOf(team, d.phase_id), box = ph.current;
    if (!box) return;
    [...box.children].filter((s) => s.dataset.segment === d.segment).forEach((s) => s.remove());
    if (!box.children.length) { box.remove(); ph.current = null; }
  },
  expert_result(team, d) {
    const ph = phaseOf(team, d.phase_id);
    resultBox(team, ph, d.expert_name, d.expert_color).textContent = d.content;
    ph.current = null;
  },
  review_result(team, d) {
    const ok = d.verdict === "accept";
    el(phaseOf(team, d.phase_id).body, "div", ok ? "line good" : "line warn",
      ok ? `✔ accepted by ${d.reviewer}` : `↻ revise (${d.reviewer}): ${d.reasons.join("; ")}`);
  },
  risk_flagged(team, d) {
    const where = d.phase_id && team.phases[d.phase_id] ? team.phases[d.phase_id].body : team.notes;
    el(where, "div", "line warn", `⚠ ${d.severity} risk: ${d.risk}`);
  },
  collaboration_notice(team, d) {
    const from = team.phases[d.from_phase_id];
    el(phaseOf(team, d.to_phase_id).body, "div", "line",
      `⇢ hand-off: ${d.from_expert} → ${d.to_expert}${from ? " (" + from.title.textContent + ")" : ""}`);
  },
  phase_completed(team, d) { setBadge(phaseOf(team, d.phase_id), "done"); },
  phase_failed(team, d) {
    const ph = phaseOf(team, d.phase_id, d.phase_name);
    setBadge(ph, "failed");
    el(ph.body, "div", "line bad", "✖ " + d.reason);
  },
  team_synthesis_chunk(team, d) { stream(synthesisBox(team), d.segment, d.content); },
  team_synthesis_chunk_reset(team, d) {
    if (team.synthesis) [...team.synthesis.children].filter((s) => s.dataset.segment === d.segment).forEach((s) => s.remove());
  },
  team_synthesis(team, d) {
    // The synthesis is also the final answer drawn right below the card: fold it so it is not read twice.
    synthesisBox(team).textContent = d.content;
    team.synthesisTitle.textContent = "✎ synthesis (the answer below)";
    team.synthesisTitle.parentElement.open = false;
  },
  team_dissolved(team, d) { teamEnded(team, d.status); },
  // Drawn by the plan and its phases already.
  plan_step() {},
  collaboration_contract_defined() {},
};
