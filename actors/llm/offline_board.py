"""The offline provider's board answers: speeches, round summaries and a JSON conclusion.

Deterministic and derived from the prompt (see `actors.board.prompts`): every
answer quotes the topic and names who spoke, a speech answers the previous
speaker and quotes the latest user intervention, and the conclusion is valid
JSON. The offline moderator declares consensus only when the latest user
intervention contains the word "consensus", so tests can end a board early.
"""

from __future__ import annotations

import re
import zlib

import msgspec

from .protocol import LLMRequest

_ENTRY = re.compile(
    r"^\[round (?P<round>\d+)\] (?P<speaker>.+?) \((?P<kind>speech|summary|intervention)\): (?P<text>.*)$"
)

_STANCES = (
    "I lean in favour, provided we move in small, reversible steps",
    "I am sceptical: the costs are easy to underestimate and hard to undo",
    "I would decide with numbers first: measure where the pain really is",
    "I see the upside, but the people and the process worry me more than the technology",
    "I support it for the parts that change often and would leave the stable core alone",
)


class _Prompt:
    """The lines of a board prompt the offline provider needs."""

    def __init__(self, request: LLMRequest) -> None:
        text = request.messages[-1].content if request.messages else ""
        fields = dict(line.split(": ", 1) for line in text.splitlines()[:3] if ": " in line)
        self.topic = fields.get("Topic", "the topic")
        self.expert = fields.get("Expert", "expert")
        self.round = int(fields.get("Round", "1 of 1").split(" ")[0] or 1)
        self.entries = [m.groupdict() for line in text.splitlines() if (m := _ENTRY.match(line))]
        # The persona follows the system prompt's first sentence ("You are X, a member of a board ...").
        self.persona = (request.system_prompt or "").partition(". ")[2].rstrip(".")

    def said(self, kind: str) -> list[dict[str, str]]:
        return [entry for entry in self.entries if entry["kind"] == kind]


def board_answer(request: LLMRequest) -> str:
    """Compose the offline answer to a board prompt, by the request's purpose."""
    prompt = _Prompt(request)
    if request.purpose == "board_summary":
        return _summary(prompt)
    if request.purpose == "board_conclusion":
        return _conclusion(prompt)
    return _speech(prompt)


def _stance(name: str) -> str:
    return _STANCES[zlib.crc32(name.encode()) % len(_STANCES)]


def _speech(prompt: _Prompt) -> str:
    parts = [f'{prompt.expert} on "{prompt.topic}" (round {prompt.round}): {_stance(prompt.expert)}.']
    if prompt.persona:
        parts.append(f"I say this as {prompt.persona[0].lower()}{prompt.persona[1:]}.")
    speeches = prompt.said("speech")
    if speeches:
        previous = speeches[-1]["speaker"]
        verb = "agree with" if _stance(previous) == _stance(prompt.expert) else "see it differently from"
        parts.append(f"I {verb} {previous} here.")
    interventions = prompt.said("intervention")
    if interventions:
        parts.append(f'Taking the user\'s point "{interventions[-1]["text"]}" into account, I would weigh it first.')
    parts.append(f"That is my view as {prompt.expert}.")
    return " ".join(parts)


def _summary(prompt: _Prompt) -> str:
    round_ = str(prompt.round)
    speakers = [e["speaker"] for e in prompt.said("speech") if e["round"] == round_]
    interventions = prompt.said("intervention")
    consensus = bool(interventions) and "consensus" in interventions[-1]["text"].lower()
    text = (
        f'Round {prompt.round} on "{prompt.topic}": {len(speakers)} speeches, from {", ".join(speakers) or "nobody"}. '
        "They agree the decision needs evidence and a reversible path, and differ on how fast to move."
    )
    return f"{text}\nCONSENSUS: {'yes' if consensus else 'no'}"


def _conclusion(prompt: _Prompt) -> str:
    rounds = len(prompt.said("summary"))
    speakers = list(dict.fromkeys(e["speaker"] for e in prompt.said("speech")))
    conclusion = {
        "summary": f'The board discussed "{prompt.topic}" over {rounds} round{"s" if rounds != 1 else ""} '
        f"with {', '.join(speakers) or 'no experts'}.",
        "decision_advice": f'On "{prompt.topic}": start with one small, reversible step, measure it, then decide on the rest.',
        "consensus_points": ["Decide with evidence, not fashion", "Keep the first step small and reversible"],
        "dissent_points": [f"{name}: {_stance(name)}" for name in speakers],
    }
    return msgspec.json.encode(conclusion).decode()
