"""The phase policy of `plan_exec` turns: which tools each phase allows, and what comes next."""

from __future__ import annotations

from ..config import PhaseConfig, PlanExecConfig

ALWAYS_ALLOWED = frozenset({"advance_phase", "ask_human"})
"""Tools no phase forbids: moving on, and asking the user."""


class PhasePolicy:
    """An ordered list of phases; the turn starts in the first and ends its work in the last."""

    def __init__(self, config: PlanExecConfig) -> None:
        self._phases: list[PhaseConfig] = list(config.phases)
        self._by_name = {phase.name: phase for phase in self._phases}

    @property
    def first(self) -> str:
        return self._phases[0].name

    def next(self, phase: str | None) -> str | None:
        """The phase after `phase`, or None when `phase` is the last one."""
        names = [p.name for p in self._phases]
        if phase not in names:
            return self.first
        index = names.index(phase) + 1
        return names[index] if index < len(names) else None

    def allows(self, phase: str | None, tool: str) -> bool:
        """True if `tool` may run in `phase` (any tool when there is no phase: not a plan_exec turn)."""
        if phase is None or tool in ALWAYS_ALLOWED:
            return True
        rule = self._by_name.get(phase)
        return rule is not None and ("*" in rule.tools or tool in rule.tools)

    def describe(self, phase: str) -> str:
        """The instruction the model gets in `phase`: where it is, what it may call, what is next."""
        rule = self._by_name[phase]
        allowed = "all your tools" if "*" in rule.tools else ", ".join([*rule.tools, *sorted(ALWAYS_ALLOWED)])
        following = self.next(phase)
        then = (
            f"call advance_phase to move to '{following}'"
            if following
            else "this is the last phase: give the final answer"
        )
        return f"Execution mode plan_exec. Current phase: {phase}. {rule.instructions} Allowed now: {allowed}; {then}."
