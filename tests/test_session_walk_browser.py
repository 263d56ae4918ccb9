"""The cross-page carry of tests/test_session_walk.py in a real browser (Debian Chromium through
Playwright, the server and helpers of tests/test_browser.py): the bits and trials chosen on Bit
flips are still chosen on Robustness, also after a page that shows neither."""

from __future__ import annotations

import pytest
from test_browser import assert_clean, browser, open_page, server, wait_idle  # noqa: F401

pytestmark = pytest.mark.browser


def _go(page, nav, label: str) -> None:
    nav.get_by_role("link", name=label, exact=True).click()
    page.wait_for_timeout(300)
    wait_idle(page)
    assert_clean(page, label)  # before the fix: "Choose at least one bit that may flip."


def _carried(page) -> bool:
    """Bit 7 alone and 1 trial, as the URL-bound widgets of this page write them."""
    query = page.url.split("?", 1)[-1].split("&")
    return "bits=7" in query and "trials=1" in query


def test_bits_and_trials_survive_every_page_between(server, browser):  # noqa: F811
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        open_page(page, server, "bit_flips")
        page.get_by_role("button", name="MSB", exact=True).filter(visible=True).first.click()
        wait_idle(page)
        page.get_by_role("slider", name="Trials (fault patterns per level)").focus()
        page.keyboard.press("Home")  # 1 trial: far from every page's default
        wait_idle(page)
        assert _carried(page), page.url
        nav = page.locator('[data-testid="stSidebarNav"]')
        _go(page, nav, "Robustness report")
        assert _carried(page), page.url
        for label in ("Lesson: flat vs sharp", "Bit anatomy", "Robustness report"):
            _go(page, nav, label)  # pages without the bit picker or trials in between
        assert _carried(page), page.url
        _go(page, nav, "Bit flips (live)")
        assert _carried(page), page.url
    finally:
        context.close()
