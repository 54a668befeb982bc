"use strict";
// Board meetings (@board): one card per board. Its frames fold into the same shape as
// GET /boards/{id} (a BoardView: experts, rounds of speeches, interventions and summaries, the
// conclusion), and one function draws that shape, so the live card and the card as it stood at a
// past log position (the time-travel slider, `?at=`) are drawn alike. Speech chunks are live-only:
// they stream into the speaker's card until the recorded speech replaces them.
let boards = {};

function newBoard(d, position) {
  const card = bubble("board", "");
  card.setAttribute("role", "region");
  const board = boards[d.board_id] = {
    card, id: d.board_id, positions: [], at: null, chunks: {},
    view: {board_id: d.board_id, status: "running", topic: d.topic, experts: d.experts, max_rounds: d.max_rounds, rounds: [], conclusion: null},
  };
  card.setAttribute("aria-label", "Board meeting: " + d.topic);
  board.body = el(card, "div");
  timeTravel(board, `/boards/${encodeURIComponent(board.id)}`, (view) => drawBoard(board, view));
  record(board, position);
  return board;
}

function record(board, position) {
  if (position) board.positions.push(position);
  board.travel();
  if (board.at === null) drawBoard(board, board.view);
}

// The time-travel slider of a board's or team's card: a stop per persisted event of it
// (`holder.positions`); at the last stop the card is live (`holder.at` null: `draw(holder.view)`),
// before it the card is drawn from `GET <path>?at=<position>`, the view as it stood then.
// `holder.travel()` follows new positions.
function timeTravel(holder, path, draw) {
  const travel = el(holder.card, "div", "timetravel");
  const id = "travel-" + holder.id;
  el(travel, "label", "", "Time travel").htmlFor = id;
  const slider = el(travel, "input");
  Object.assign(slider, {type: "range", id, min: 0, max: 0, value: 0, step: 1});
  slider.setAttribute("aria-describedby", id + "-at");
  const output = el(travel, "output");
  output.id = id + "-at";
  const live = el(travel, "button", "", "Live");
  live.type = "button";
  const show = () => {
    const total = holder.positions.length;
    const index = holder.at === null ? total - 1 : holder.at;
    slider.max = Math.max(total - 1, 0);
    slider.value = index;
    output.value = holder.at === null
      ? `live · ${total} events`
      : `as it stood at log position ${holder.positions[index]} · event ${index + 1} of ${total}`;
    slider.setAttribute("aria-valuetext", output.value);
    live.disabled = holder.at === null;
    holder.card.classList.toggle("past", holder.at !== null);
  };
  const go = async (index) => {
    holder.at = index >= holder.positions.length - 1 ? null : index;
    show();
    if (holder.at === null) { draw(holder.view); return; }
    const past = await api(`${path}?at=${holder.positions[index]}`);
    if (holder.at === index) draw(past);  // unless the reader moved on meanwhile
  };
  slider.addEventListener("input", () => go(Number(slider.value)));
  live.onclick = () => go(holder.positions.length - 1);
  holder.travel = show;
}

function roundOf(view, n) {
  let round = view.rounds.find((r) => r.round === n);
  if (!round) {
    round = {round: n, speeches: [], interventions: [], summaries: []};
    view.rounds.push(round);
    view.rounds.sort((a, b) => a.round - b.round);
  }
  return round;
}

function profile(view, name) { return view.experts.find((x) => x.name === name) || {name}; }

// Who speaks now: the expert streaming a speech, else the next one of the round in the experts' order.
function speakerNow(board, view) {
  if (view.status !== "running") return null;
  const streaming = Object.keys(board.chunks)[0];
  if (streaming) return streaming.split("\n")[1];
  const round = view.rounds[view.rounds.length - 1];
  if (round && round.summaries.length) return null;
  const spoken = new Set(round ? round.speeches.map((s) => s.expert_name) : []);
  const next = view.experts.find((x) => !x.is_moderator && !spoken.has(x.name));
  return next ? next.name : (view.experts.find((x) => x.is_moderator) || {}).name;
}

function drawBoard(board, view) {
  const live = board.at === null;
  const box = board.body;
  box.replaceChildren();
  el(box, "h2", "", "🏛 " + view.topic);
  const done = view.rounds.filter((r) => r.summaries.length).length;
  const current = view.rounds.length ? view.rounds[view.rounds.length - 1].round : 1;
  const speaker = live ? speakerNow(board, view) : null;
  const status = {running: `Round ${current} of ${view.max_rounds}`, concluded: `Concluded after ${done} rounds`,
    failed: "Failed", cancelled: "Cancelled", unknown: "…"}[view.status] || view.status;
  el(box, "div", "progress", status + (speaker ? ` · ${speaker} is speaking` : ""));
  const experts = el(box, "div", "experts");
  for (const x of view.experts) {
    const card = el(experts, "div", "expert" + (x.name === speaker ? " speaking" : ""));
    card.style.setProperty("--c", x.color || "");
    el(card, "span", "avatar", x.avatar || x.name[0]).setAttribute("aria-hidden", "true");
    const text = el(card, "div");
    el(text, "div", "name", x.name + (x.is_moderator && x.name !== "moderator" ? " · moderator" : ""));
    el(text, "div", "persona", x.persona || "");
    const streaming = live && Object.entries(board.chunks).find(([key]) => key.split("\n")[1] === x.name);
    if (streaming) el(text, "div", "live typing", Object.values(streaming[1]).join(""));
  }
  for (const round of view.rounds) {
    const section = el(box, "section", "round");
    el(section, "h3", "", `Round ${round.round}`);
    const items = [
      ...round.speeches.map((s) => [s.position, () => speech(section, view, s.expert_name, s.content)]),
      ...round.interventions.map((i) => [i.position, () => el(section, "div", "intervention", "🗣 You: " + i.content)]),
    ].sort((a, b) => a[0] - b[0]);
    for (const [, draw] of items) draw();
    if (live) {
      for (const [key, segments] of Object.entries(board.chunks)) {
        const [n, name] = key.split("\n");
        if (Number(n) === round.round) speech(section, view, name, Object.values(segments).join(""), true);
      }
    }
    for (const s of round.summaries) {
      const summary = el(section, "div", "summary");
      el(summary, "div", "who", `📝 ${s.moderator_name}: summary of round ${round.round}${s.consensus ? " · consensus reached" : ""}`);
      el(summary, "div", "answer").innerHTML = markdown(s.content);
    }
  }
  if (view.conclusion) drawConclusion(box, view.conclusion);
  if (view.failure) el(box, "div", "msg error", view.failure);
}

function speech(parent, view, name, content, streaming) {
  const x = profile(view, name);
  const div = el(parent, "article", "speech");
  div.style.setProperty("--c", x.color || "");
  el(div, "div", "who", `${x.avatar || ""} ${name}`.trim());
  el(div, "div", "answer" + (streaming ? " typing" : "")).innerHTML = markdown(content);
}

function drawConclusion(box, c) {
  const div = el(box, "section", "conclusion");
  div.setAttribute("aria-label", "Conclusion");
  el(div, "h3", "", "Summary");
  el(div, "div", "answer").innerHTML = markdown(c.summary);
  if (c.decision_advice) {
    el(div, "h3", "", "Decision advice");
    el(div, "div", "answer").innerHTML = markdown(c.decision_advice);
  }
  for (const [title, points] of [["Consensus", c.consensus_points], ["Dissent", c.dissent_points]]) {
    if (!points.length) continue;
    el(div, "h3", "", title);
    const ul = el(div, "ul");
    for (const p of points) el(ul, "li", "", p);
  }
}

function chunkKey(d) { return d.round + "\n" + d.expert_name; }

// The latest board still running: the error frame of a failed board does not name it.
function runningBoard() { return Object.values(boards).reverse().find((b) => b.view.status === "running"); }

const boardFrames = {
  board_started(d, f) { newBoard(d, f.position); },
  expert_speech_chunk(board, d) {
    const segments = board.chunks[chunkKey(d)] = board.chunks[chunkKey(d)] || {};
    segments[d.segment] = (segments[d.segment] || "") + d.content;
    if (board.at === null) drawBoard(board, board.view);
  },
  expert_speech_chunk_reset(board, d) {
    // An empty segment discards every chunk of the speech: the board asks for it anew.
    if (d.segment) delete (board.chunks[chunkKey(d)] || {})[d.segment];
    else delete board.chunks[chunkKey(d)];
    if (board.at === null) drawBoard(board, board.view);
  },
  expert_speech(board, d, f) {
    delete board.chunks[chunkKey(d)];
    roundOf(board.view, d.round).speeches.push({position: f.position, expert_name: d.expert_name, content: d.content});
  },
  round_summary(board, d, f) {
    roundOf(board.view, d.round).summaries.push({position: f.position, moderator_name: d.moderator_name, content: d.content, consensus: d.consensus});
  },
  board_concluded(board, d) {
    board.view.status = "concluded";
    board.view.conclusion = d;
  },
};

// Apply a board frame; true if it was one. Persisted ones become a stop of the slider.
function boardFrame(f) {
  const d = f.data || {};
  if (f.type === "board_started") { boardFrames.board_started(d, f); return true; }
  if (!Object.hasOwn(boardFrames, f.type)) return false;
  const board = boards[d.board_id];
  if (!board) return true;
  boardFrames[f.type](board, d, f);
  if (f.position) record(board, f.position);
  return true;
}

// The user's text taken into a running board, drawn in the round it arrived in.
function boardIntervention(d, position) {
  const board = boards[d.target_id];
  if (!board) return false;
  const view = board.view;
  const round = roundOf(view, view.rounds.length ? view.rounds[view.rounds.length - 1].round : 1);
  if (!round.interventions.some((i) => i.content === d.content)) round.interventions.push({position: position || Infinity, content: d.content});
  else if (position) round.interventions.find((i) => i.content === d.content).position = position;
  record(board, position);
  return true;
}

function boardEnded(board, status, failure) {
  board.chunks = {};
  board.view.status = status;
  if (failure) board.view.failure = failure;
  record(board, null);
}
