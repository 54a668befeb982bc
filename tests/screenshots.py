"""Take the README's screenshots of the chat page: `.venv/bin/python -m tests.screenshots [DIR]` (default docs/).

It starts its own `agentbus up` on embedded services in a scratch dir (offline
model), holds a chat, a board of 2 rounds and a team, and shoots each view on a
desktop and a phone, light and dark, with Debian's Chromium (tests/browser.py).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from playwright.async_api import Browser, expect

from tests.browser import chromium
from tests.system import System

VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
CHAT = ["what is 17*23?", "delete report.pdf"]
BOARD = "@board rounds=2 Should we move our monolith to microservices?"
TEAM = "@team Build a user login feature with email and password"


async def shoot(browser: Browser, system: System, chat: str, board: str, team: str, out: Path) -> None:
    for device, viewport in VIEWPORTS.items():
        for scheme in ("light", "dark"):
            context = await browser.new_context(
                viewport=viewport,  # type: ignore[arg-type]
                color_scheme=scheme,  # type: ignore[arg-type]
                is_mobile=device == "phone",
                device_scale_factor=1,
            )
            page = await context.new_page()
            await page.goto(f"{system.http_url}/#{chat}")
            await expect(page.locator(".confirm .outcome")).to_be_visible(timeout=30_000)
            await page.screenshot(path=out / f"page-chat-{device}-{scheme}.png")
            await page.goto(f"{system.http_url}/#{board}")
            card = page.locator(".board")
            await expect(card.locator(".conclusion")).to_be_visible(timeout=30_000)
            # The top of the card: the experts, the first round, the slider a scroll away.
            await card.evaluate("card => card.scrollIntoView({block: 'start'})")
            await page.screenshot(path=out / f"page-board-{device}-{scheme}.png")
            await page.goto(f"{system.http_url}/#{team}")
            card = page.locator(".team")
            await expect(card.locator(".conclusion")).to_be_visible(timeout=30_000)
            await card.evaluate("card => card.scrollIntoView({block: 'start'})")
            await page.screenshot(path=out / f"page-team-{device}-{scheme}.png")
            await context.close()


async def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        system = System(Path(scratch) / "data", {"AGENTBUS_OFFLINE_DELAY": "0"}).start(timeout=120)
        try:
            async with chromium() as browser:
                chat, board, team = [await system.create_session() for _ in range(3)]
                context = await browser.new_context()
                page = await context.new_page()
                await page.goto(f"{system.http_url}/#{chat}")
                for text in CHAT:
                    await page.locator("#text").fill(text)
                    await page.locator("#text").press("Enter")
                    await expect(page.locator(".msg.user")).to_have_count(CHAT.index(text) + 1)
                await page.get_by_role("button", name="Don't").click()
                await expect(page.locator(".msg.assistant .answer").last).to_contain_text("did not delete")
                await page.goto(f"{system.http_url}/#{board}")
                await page.locator("#text").fill(BOARD)
                await page.locator("#text").press("Enter")
                await expect(page.locator(".conclusion")).to_be_visible(timeout=60_000)
                await page.goto(f"{system.http_url}/#{team}")
                await page.locator("#text").fill(TEAM)
                await page.locator("#text").press("Enter")
                await expect(page.locator(".team .conclusion")).to_be_visible(timeout=60_000)
                await context.close()
                await shoot(browser, system, chat, board, team, out)
        finally:
            system.stop()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(out))
