"""The texts users read (refusals, board and team headings, the final answer's sections) in English and Chinese.

The seed's users wrote Chinese, and its texts were Chinese; a session chooses
by its metadata `locale` (`zh`, `zh-CN`, `en`, …), else `[session] locale` or
`AGENTBUS_LOCALE`. Each text is a `str.format` template.
"""

from __future__ import annotations

import msgspec


class Texts(msgspec.Struct, frozen=True, kw_only=True):
    """One language's texts."""

    board_example: str
    board_needs_topic: str
    invalid_rounds: str
    no_experts: str
    team_example: str
    team_needs_task: str
    unknown_experts: str
    too_many_turns: str
    session_closed: str
    empty_message: str
    summary: str
    decision_advice: str
    consensus: str
    dissent: str
    none: str
    one_round: str
    rounds: str
    team_no_result: str
    team_cancelled: str
    team_failed: str
    board_ended: str


ENGLISH = Texts(
    board_example="@board Should we move our monolith to microservices?",
    board_needs_topic="a board meeting needs a topic, for example: {example}",
    invalid_rounds="rounds must be a number from 1 to {limit}, got {got!r}",
    no_experts="a board meeting needs at least one expert who is not the moderator",
    team_example="@team Build a user login feature with email and password",
    team_needs_task="a team needs a task, for example: {example}",
    unknown_experts="unknown experts: {unknown} (known: {known})",
    too_many_turns="{cap} turns are running; wait for one to finish",
    session_closed="session {session_id} is closed",
    empty_message="message content is empty",
    summary="Summary",
    decision_advice="Decision advice",
    consensus="Consensus",
    dissent="Dissent",
    none="(none)",
    one_round="_1 round of discussion_",
    rounds="_{rounds} rounds of discussion_",
    team_no_result="The team finished without a result.",
    team_cancelled="the team collaboration was cancelled: {reason}",
    team_failed="the team collaboration failed: {reason}",
    board_ended="board meeting ended: {reason}",
)

CHINESE = Texts(
    board_example="@board 如何看待 AI 未来",
    board_needs_topic="私董会需要一个讨论主题,例如:{example}",
    invalid_rounds="轮数必须是 1 到 {limit} 之间的数字,收到 {got!r}",
    no_experts="私董会至少需要一位主持人以外的专家",
    team_example="@team 开发用户登录功能",
    team_needs_task="团队任务需要一个描述,例如:{example}",
    unknown_experts="未知的专家:{unknown}(可用:{known})",
    too_many_turns="已有 {cap} 个任务在运行,请等待其中一个完成",
    session_closed="会话 {session_id} 已关闭",
    empty_message="消息内容为空",
    summary="讨论总结",
    decision_advice="决策建议",
    consensus="共识点",
    dissent="分歧点",
    none="(无)",
    one_round="_共进行 1 轮讨论_",
    rounds="_共进行 {rounds} 轮讨论_",
    team_no_result="团队执行完成,但未生成最终结果。",
    team_cancelled="团队协作已取消:{reason}",
    team_failed="团队协作执行失败:{reason}",
    board_ended="私董会执行失败:{reason}",
)


def texts_for(locale: str | None) -> Texts:
    """The texts of `locale` (Chinese for any `zh…`, else English)."""
    return CHINESE if (locale or "").lower().startswith("zh") else ENGLISH
