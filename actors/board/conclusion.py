"""Read the moderator's JSON conclusion, repairing what models commonly get wrong.

Models wrap JSON in code fences or prose, use other key spellings, or give a
string where a list belongs. `parse_conclusion` tries strict JSON, then the
outermost `{…}` in the text, then lenient field conversion; if nothing
parses, it falls back to a conclusion built from the round summaries, so a
board always ends with a `board_concluded` event.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.events import BoardConcluded


class _Conclusion(msgspec.Struct, frozen=True, kw_only=True):
    summary: str = ""
    decision_advice: str = ""
    consensus_points: list[str] = []
    dissent_points: list[str] = []


_ALIASES = {
    "decision": "decision_advice",
    "advice": "decision_advice",
    "recommendation": "decision_advice",
    "consensus": "consensus_points",
    "agreements": "consensus_points",
    "dissent": "dissent_points",
    "disagreements": "dissent_points",
}


def parse_conclusion(text: str, *, board_id: str, total_rounds: int, summaries: list[str]) -> BoardConcluded:
    """Turn the moderator's answer into `BoardConcluded`; never raises."""
    parsed = _strict(text)
    if parsed is None or not parsed.summary.strip():
        # Strict decoding ignores unknown keys: a `"Summary"` parses as an empty conclusion.
        parsed = _lenient(text) or parsed
    if parsed is None or not parsed.summary.strip():
        fallback = " ".join(summaries[-1:]) or text.strip()[:2000] or "The board ended without a written conclusion."
        parsed = _Conclusion(
            summary=parsed.summary if parsed and parsed.summary.strip() else fallback,
            decision_advice=parsed.decision_advice if parsed else "",
            consensus_points=parsed.consensus_points if parsed else [],
            dissent_points=parsed.dissent_points if parsed else [],
        )
    return BoardConcluded(
        board_id=board_id,
        summary=parsed.summary.strip(),
        decision_advice=parsed.decision_advice.strip(),
        consensus_points=[p.strip() for p in parsed.consensus_points if p.strip()],
        dissent_points=[p.strip() for p in parsed.dissent_points if p.strip()],
        total_rounds=total_rounds,
    )


def _strict(text: str) -> _Conclusion | None:
    try:
        return msgspec.json.decode(text.strip(), type=_Conclusion)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _lenient(text: str) -> _Conclusion | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        raw = msgspec.json.decode(text[start : end + 1])
    except msgspec.DecodeError:
        return None
    if not isinstance(raw, dict):
        return None
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        name = _ALIASES.get(str(key).lower(), str(key).lower())
        if name in ("summary", "decision_advice"):
            fields[name] = value if isinstance(value, str) else msgspec.json.encode(value).decode()
        elif name in ("consensus_points", "dissent_points"):
            fields[name] = _points(value)
    return _Conclusion(**fields)


def _points(value: object) -> list[str]:
    if isinstance(value, list):
        return [item if isinstance(item, str) else msgspec.json.encode(item).decode() for item in value]
    if isinstance(value, str):
        return [line.strip(" -*•\t") for line in value.splitlines() if line.strip(" -*•\t")]
    return []
