"""The chat page at `/`, in a real browser (Debian's Chromium under Playwright) against a real `agentbus up`.

Each test is one thing a user does: a chat turn, a confirmation, a board watched
live, the time-travel slider, a reconnect across a gateway restart, a phone, a
sign-in. Every wait is Playwright's auto-waiting `expect` on the page's DOM; a
script error on the page fails the test.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from tests.browser import MISSING, chromium
from tests.system import System
from tests.users import ENV as USERS_ENV
from tests.users import token

TOPIC = "Should we move our monolith to microservices?"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
PAST = re.compile(r"\bpast\b")  # the class of a card drawn as it stood at a past position
# Two shared cores run the whole stack and the browser: give every DOM state ample time to come.
expect.set_options(timeout=20_000)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    try:
        async with chromium() as browser:
            yield browser
    except FileNotFoundError:
        pytest.fail(MISSING)


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    async with opened(browser, DESKTOP) as page:
        yield page


@contextlib.asynccontextmanager
async def opened(browser: Browser, viewport: ViewportSize, **options: Any) -> AsyncIterator[Page]:
    """A page of a fresh browser context; a script error on it fails the test."""
    context = await browser.new_context(viewport=viewport, **options)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        await context.close()
    assert errors == [], f"script errors on the page: {errors}"


async def open_session(page: Page, system: System, session_id: str) -> None:
    await page.goto(f"{system.http_url}/#{session_id}")
    await expect(page.locator("#status-dot")).to_have_class("online")


async def say(page: Page, content: str) -> None:
    await page.locator("#text").fill(content)
    await page.locator("#text").press("Enter")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_chat_turn_streams_a_sanitized_markdown_answer_with_its_tool_steps_folded(
    page: Page, system: System, session_id: str
) -> None:
    await open_session(page, system, session_id)
    await expect(page.locator("#text")).to_be_focused()
    await say(page, "what is 17*23?")
    await expect(page.locator(".msg.user")).to_have_text("what is 17*23?")
    turn = page.locator(".msg.assistant").last
    await expect(turn.locator(".answer")).to_contain_text("391")
    steps = turn.locator("details.steps")
    await expect(steps.locator("summary")).to_contain_text("steps")
    await expect(steps.locator(".step").filter(has_text="🔧 calculator")).to_contain_text("17*23")
    await expect(steps).not_to_have_attribute("open", "")  # folded under the answer
    await expect(page.locator("#stop")).to_be_hidden()  # no longer busy
    await expect(page.locator("#sessions li[aria-current=true] .title")).to_have_text("what is 17*23?")

    # The offline answer quotes the message: its list is Markdown, its script is sanitized away.
    composer = page.locator("#text")
    for line in ["a list:", "", "- one", "- two", ""]:
        await composer.press_sequentially(line)
        await composer.press("Shift+Enter")  # a line break, not a send
    await composer.press_sequentially('<img src=x onerror="window.pwned=1">')
    await composer.press("Enter")
    await expect(page.locator(".msg.user")).to_have_count(2)
    answer = page.locator(".msg.assistant .answer").nth(1)
    await expect(answer.locator("li")).to_have_text(["one", "two"])
    await expect(answer.locator("img")).to_have_count(1)
    await expect(answer.locator("img[onerror]")).to_have_count(0)
    assert await page.evaluate("window.pwned") is None


async def test_stop_cancels_the_answer_being_streamed(page: Page, tmp_path: Path, system_env: dict[str, str]) -> None:
    system = System(tmp_path / "data", {**system_env, "AGENTBUS_OFFLINE_DELAY": "0.2"}).start()
    try:
        await open_session(page, system, await system.create_session())
        await say(page, "tell me a long story")
        stop = page.get_by_role("button", name="Stop")
        await expect(page.locator(".msg.assistant .answer.typing")).not_to_be_empty()  # streaming
        await stop.click()
        await expect(page.locator(".msg.meta")).to_have_text("⏹ stopped")
        await expect(stop).to_be_hidden()
        await expect(page.locator("#text")).to_be_focused()
    finally:
        assert system.stop() == 0


async def test_the_sidebar_creates_searches_renames_and_closes_sessions(page: Page, system: System) -> None:
    await page.goto(system.http_url + "/")
    for message in ("what is 17*23?", "hello there"):
        await page.get_by_role("button", name="New chat").click()
        await expect(page.locator("#status-dot")).to_have_class("online")
        await say(page, message)
        await expect(page.locator("#sessions li[aria-current=true] .title")).to_have_text(message)
    sessions = page.locator("#sessions li .title")
    await expect(sessions).to_have_text(["hello there", "what is 17*23?"])  # the latest first

    await page.get_by_label("Search sessions").fill("17*23")
    await expect(sessions).to_have_text(["what is 17*23?"])
    await page.get_by_label("Search sessions").fill("")
    await expect(sessions).to_have_count(2)

    # Opening another session by its link keeps the page: the other's history comes over its socket.
    await sessions.nth(1).click()
    await expect(page.locator(".msg.user")).to_have_text(["what is 17*23?"])
    await page.get_by_role("button", name="Rename what is 17*23?").click()
    title = page.get_by_label("New title")
    await title.fill("Arithmetic")
    await title.press("Enter")
    await expect(page.locator("#heading")).to_have_text("Arithmetic")
    await expect(page.locator("#sessions li[aria-current=true] .title")).to_have_text("Arithmetic")
    await page.get_by_role("button", name="Close Arithmetic").click()
    await expect(page.locator("#sessions li.closed .title")).to_have_text("Arithmetic")


async def test_a_confirmation_is_a_dialog_and_once_answered_history_shows_it_answered(
    page: Page, system: System, session_id: str
) -> None:
    await open_session(page, system, session_id)
    await say(page, "delete report.pdf")
    dialog = page.get_by_role("alertdialog")
    await expect(dialog).to_contain_text("Allow delete_upload?")
    await expect(dialog.locator("pre")).to_contain_text("report.pdf")  # the arguments, readable
    await expect(dialog.get_by_role("button", name="Yes, delete_upload")).to_have_class("danger")
    await dialog.get_by_role("button", name="Don't").click()
    await expect(dialog.locator(".outcome")).to_have_text("✖ Denied: not run.")
    await expect(page.locator(".msg.assistant .answer").last).to_contain_text("did not delete report.pdf")

    await page.reload()
    await expect(page.locator("#status-dot")).to_have_class("online")
    dialog = page.get_by_role("alertdialog")
    await expect(dialog.locator(".outcome")).to_have_text("✖ Denied: not run.")
    await expect(dialog.get_by_role("button")).to_have_count(0)  # never a live control again


async def test_a_question_is_answered_inline_with_enter_and_history_shows_the_answer(
    page: Page, system: System, session_id: str
) -> None:
    await open_session(page, system, session_id)
    await say(page, "ask me for my name")
    question = page.get_by_role("group", name="What is your name?")
    reply = question.get_by_role("textbox")
    await expect(reply).to_be_focused()  # the composer was empty: the reply box takes the keyboard
    await reply.fill("Ada")
    await reply.press("Enter")
    await expect(question.locator(".outcome")).to_have_text("You answered: Ada")
    await expect(page.locator(".msg.assistant .answer").last).to_contain_text("Ada")

    await page.reload()
    await expect(question.locator(".outcome")).to_have_text("You answered: Ada")
    await expect(question.get_by_role("textbox")).to_have_count(0)


async def test_a_board_of_two_rounds_is_watched_live_with_an_intervention_in_place(
    page: Page, tmp_path: Path, system_env: dict[str, str]
) -> None:
    system = System(tmp_path / "data", {**system_env, "AGENTBUS_OFFLINE_DELAY": "0.03"}).start()
    try:
        session_id = await system.create_session()
        await open_session(page, system, session_id)
        await say(page, f"@board rounds=2 {TOPIC}")
        board = page.get_by_role("region", name=f"Board meeting: {TOPIC}")
        await expect(board.locator(".expert")).to_have_count(4)
        # The speaker's card streams the speech while it is being made.
        speaking = board.locator(".expert.speaking")
        await expect(speaking.locator(".live")).not_to_be_empty()
        await expect(board.locator(".progress")).to_contain_text("is speaking")
        await expect(board.locator(".progress")).to_contain_text("Round 1 of 2")
        await say(page, "we only have two engineers")
        await expect(board.locator(".intervention")).to_have_text("🗣 You: we only have two engineers")
        await expect(page.locator(".msg.user")).to_have_count(1)  # the intervention is drawn in the board only
        conclusion = board.get_by_role("region", name="Conclusion")
        await expect(conclusion).to_contain_text("Summary", timeout=90_000)
        await expect(board.locator(".round")).to_have_count(2)
        await expect(board.locator(".round").nth(0).locator(".speech")).to_have_count(3)
        await expect(board.locator(".round").nth(1).locator(".speech")).to_have_count(3)
        await expect(board.locator(".summary")).to_have_count(2)
        await expect(board.locator(".progress")).to_have_text("Concluded after 2 rounds")
        await expect(board.locator(".expert.speaking")).to_have_count(0)
        await expect(page.locator("#stop")).to_be_hidden()
    finally:
        assert system.stop() == 0


async def test_the_view_follows_the_stream_unless_the_reader_scrolled_up(
    page: Page, tmp_path: Path, system_env: dict[str, str]
) -> None:
    system = System(tmp_path / "data", {**system_env, "AGENTBUS_OFFLINE_DELAY": "0.03"}).start()
    try:
        await open_session(page, system, await system.create_session())
        await say(page, f"@board rounds=2 {TOPIC}")
        log = page.locator("#log")
        speeches = page.locator(".board .speech")
        # `nth(k)` attached: at least k+1 speeches (recorded or streaming) are drawn.
        await expect(speeches.nth(3)).to_be_attached()
        assert await log.evaluate("log => log.scrollHeight > log.clientHeight + 200")  # taller than the view by now
        at_end = "log => log.scrollHeight - log.scrollTop - log.clientHeight < 48"
        assert await log.evaluate(at_end)
        await log.evaluate("log => { log.scrollTop = 0; }")
        await expect(speeches.nth(5)).to_be_attached()
        assert await log.evaluate("log => log.scrollTop") == 0  # the reader's place is kept
        await log.evaluate("log => { log.scrollTop = log.scrollHeight; }")
        await expect(page.get_by_role("region", name="Conclusion")).to_be_attached(timeout=90_000)
        assert await log.evaluate(at_end)  # back at the end: followed again
    finally:
        assert system.stop() == 0


async def test_the_time_travel_slider_redraws_the_board_as_it_stood(
    page: Page, system: System, session_id: str
) -> None:
    await open_session(page, system, session_id)
    await say(page, f"@board rounds=2 {TOPIC}")
    board = page.get_by_role("region", name=f"Board meeting: {TOPIC}")
    await expect(board.get_by_role("region", name="Conclusion")).to_be_visible()
    slider = board.get_by_role("slider", name="Time travel")
    await expect(slider).to_have_attribute(
        "aria-valuetext", "live · 10 events"
    )  # start, 6 speeches, 2 summaries, conclusion

    await slider.focus()
    await slider.press("Home")  # the meeting as it opened: experts, nothing said yet
    await expect(board).to_have_class(PAST)
    await expect(board.locator("output")).to_contain_text("event 1 of 10")
    await expect(board.locator(".speech")).to_have_count(0)
    await expect(board.get_by_role("region", name="Conclusion")).to_have_count(0)
    await slider.press("ArrowRight")
    await slider.press("ArrowRight")
    await expect(board.locator("output")).to_contain_text("event 3 of 10")
    await expect(board.locator(".speech")).to_have_count(2)
    await expect(board.locator(".summary")).to_have_count(0)

    await board.get_by_role("button", name="Live").click()
    await expect(board).not_to_have_class(PAST)
    await expect(board.locator(".speech")).to_have_count(6)
    await expect(board.get_by_role("region", name="Conclusion")).to_be_visible()


async def test_a_team_is_a_phase_board_and_its_slider_goes_back_to_the_plan(
    page: Page, system: System, session_id: str
) -> None:
    await open_session(page, system, session_id)
    await say(page, "@team Build a user login feature with email and password")
    team = page.get_by_role("region", name="Team: Build a user login feature with email and password")
    await expect(team.get_by_role("region", name="Synthesis")).to_be_visible()
    await expect(team.locator(".status")).to_contain_text("completed")
    phases = team.locator(".phase")
    count = await phases.count()
    await expect(team.locator(".phase[data-state=done]")).to_have_count(count)
    await expect(team.locator(".phase .line.good")).to_have_count(count)  # each accepted by the lead
    # Design and the test plan depend on nothing: side by side in the first row; the rest below them.
    rows = team.locator(".phase-row")
    await expect(rows.first.locator(".phase .name")).to_have_text(["Design", "Test plan"])
    assert await rows.count() >= 2

    slider = team.get_by_role("slider", name="Time travel")
    await slider.focus()
    await slider.press("Home")  # the team as it formed: the whole plan still to do
    await expect(team).to_have_class(PAST)
    await expect(team.locator(".phase[data-state=pending]")).to_have_count(count)
    await expect(team.get_by_role("region", name="Synthesis")).to_have_count(0)
    await slider.press("End")
    await expect(team).not_to_have_class(PAST)
    await expect(team.locator(".phase[data-state=done]")).to_have_count(count)


async def test_a_gateway_restart_loses_no_typed_message_and_duplicates_nothing(
    page: Page, tmp_path: Path, system_env: dict[str, str]
) -> None:
    port = free_port()
    system = System(tmp_path / "data", system_env).start(args=("--port", str(port)))
    try:
        session_id = await system.create_session()
        await open_session(page, system, session_id)
        await say(page, "first")
        await expect(page.locator(".msg.assistant .answer")).to_contain_text(['You said: "first"'])

        assert system.stop() == 0
        banner = page.locator("#banner")
        await expect(banner).to_contain_text("Connection lost")
        await expect(page.locator("#status-dot")).to_have_class("offline")
        await say(page, "second")  # typed while the server is down: kept, drawn as pending
        await expect(page.locator(".msg.user.pending")).to_have_text("secondsending…")
        await expect(banner).to_contain_text("1 unsent message will be sent when it is back")

        system.start(args=("--port", str(port)))
        await expect(page.locator("#status-dot")).to_have_class("online", timeout=60_000)
        await expect(page.locator(".msg.assistant .answer")).to_contain_text(
            ['You said: "first"', 'You said: "second"']
        )
        await expect(page.locator(".msg.user")).to_have_text(["first", "second"])
        await expect(banner).to_be_hidden()
        messages = await system.messages(session_id)
        assert [m["content"] for m in messages if m["role"] == "user"] == ["first", "second"]
    finally:
        if system.process is not None:
            assert system.stop() == 0


async def test_a_phone_sees_the_chat_full_width_and_the_sessions_as_a_drawer(
    browser: Browser, system: System, session_id: str
) -> None:
    async with opened(browser, PHONE, is_mobile=True, has_touch=True, color_scheme="dark") as page:
        await open_session(page, system, session_id)
        sidebar = page.locator("#sidebar")
        await expect(sidebar).not_to_be_in_viewport()
        await say(
            page, "what is 17*23? A long first message, which becomes the title in the header, must not widen the page"
        )
        await expect(page.locator(".msg.assistant .answer")).to_contain_text("391")
        await expect(page.locator("#heading")).to_contain_text("what is 17*23?")
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing overflows
        composer = await page.locator("#composer").bounding_box()
        assert composer is not None and composer["width"] == PHONE["width"]
        # Dark, as the system asks.
        assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(13, 17, 23)"

        menu = page.get_by_role("button", name="Sessions")
        await menu.click()
        await expect(menu).to_have_attribute("aria-expanded", "true")
        await expect(sidebar).to_be_in_viewport()
        await expect(page.locator("#search")).to_be_focused()
        await page.keyboard.press("Escape")
        await expect(sidebar).not_to_be_in_viewport()


async def test_a_gateway_that_wants_a_token_asks_for_one_and_the_page_chats_with_it(
    page: Page, tmp_path: Path, system_env: dict[str, str]
) -> None:
    system = System(tmp_path / "data", {**system_env, **USERS_ENV}).start()
    try:
        await page.goto(system.http_url + "/")
        dialog = page.get_by_role("dialog", name="Sign in")
        await expect(dialog).to_be_visible()
        await dialog.get_by_label("Token").fill(token("ada"))
        await dialog.get_by_role("button", name="Sign in").click()
        await page.get_by_role("button", name="New chat").click()
        await expect(page.locator("#status-dot")).to_have_class("online")  # the socket took ?token=
        await say(page, "hello")
        await expect(page.locator(".msg.assistant .answer")).to_contain_text('You said: "hello"')

        await page.reload()  # the token is kept
        await expect(page.locator("#status-dot")).to_have_class("online")
        await expect(page.locator("#sessions li")).to_have_count(1)
        await expect(dialog).to_be_hidden()
    finally:
        assert system.stop() == 0
