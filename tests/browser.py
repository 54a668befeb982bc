"""Debian's Chromium under Playwright, for the tests of the chat page (and its screenshots).

Playwright's own browser downloads are never used: the browser is the one
`apt-get install -y chromium` puts at /usr/bin/chromium (`.ci/run` installs it).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
MISSING = f"the chat page's tests need Debian's Chromium at {CHROMIUM}: install it with `apt-get install -y chromium`"
# Headless and quiet: no sandbox (tests run as root in a container), nothing fetched behind the page's back.
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


def require_chromium() -> None:
    """Raise `FileNotFoundError` naming the apt command if Chromium is missing."""
    if not CHROMIUM.exists():
        raise FileNotFoundError(MISSING)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Launch Debian's Chromium headless (see `require_chromium`)."""
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()
