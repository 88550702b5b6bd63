"""The support console in a real browser: headless Chromium (Debian's package) driven by Playwright,
against the real server (`allies serve`) over this test's database."""

from __future__ import annotations

import os
import re

import pytest
from conftest import BARNES, CASE3_PASSWORD, CASE3_USERNAME, ROOT, TOKENS, YOUNG_WOLF, stored_credentials
from console_screenshots import DESKTOP, EXAMPLE_LOG, INSTALL_CHROMIUM, PHONE, chromium_path, launch, take

from allies import triage

PAGES = [
    "/console/",
    "/console/allies?q=Ba",
    f"/console/allies/{YOUNG_WOLF}",
    f"/console/allies/{YOUNG_WOLF}/fix",
    f"/console/allies/{BARNES}/credentials",
    "/console/triage",
]


@pytest.fixture(scope="module")
def browser():
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {INSTALL_CHROMIUM}")
        pytest.skip(INSTALL_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, served_app):
    """A page of a fresh browser context on the served console; fails the test on any error the
    browser reports (a script error, a resource the policy blocked, a failed load)."""
    context = browser.new_context(base_url=served_app, viewport=DESKTOP)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    tab.on(
        "requestfailed",  # a load cut short by the next navigation (ERR_ABORTED) is no failure
        lambda request: None if "ERR_ABORTED" in (request.failure or "") else problems.append(request.url),
    )
    tab.problems = problems  # a test expecting a refusal takes its message out
    yield tab
    context.close()
    assert problems == []


def figure(tab, name: str) -> str:
    return tab.inner_text(f"#{name}").strip()


def test_each_page_renders_styled_with_nothing_blocked(page):
    for path in PAGES:
        response = page.goto(path)
        assert response.status == 200, path
        assert page.locator("h1").is_visible()
        header = page.eval_on_selector("header.top", "e => getComputedStyle(e).backgroundColor")
        assert header == "rgb(29, 79, 145)", path  # the stylesheet loaded under the policy
    page.goto("/console/")
    assert page.locator("svg.chart rect").count() == 9  # one bar per tag (case 1)


def test_the_store_fix_is_previewed_applied_and_undone_by_clicking(page, conn):
    before = conn.execute("SELECT data::jsonb FROM stores WHERE id = %s", (YOUNG_WOLF,)).fetchone()[0]
    page.goto("/console/allies?q=Young-Wolf")
    page.click(f"text={YOUNG_WOLF}")
    page.click("text=Fix this store (case 2)")
    page.fill("#owner", "Old-Wolf")
    page.select_option("#old_tag", "finanzas")
    page.select_option("#new_tag", "educacion")
    page.click("#preview-button")
    assert "Old-Wolf" in page.inner_text("#preview") and "educacion" in page.inner_text("#preview")
    assert conn.execute("SELECT count(*) FROM store_changes").fetchone()[0] == 0
    page.click("#apply")
    assert "Journaled as change 1." in page.inner_text("#result")
    after = conn.execute("SELECT data::jsonb FROM stores WHERE id = %s", (YOUNG_WOLF,)).fetchone()[0]
    assert after["brand_owner"] == "Old-Wolf" and sorted(after["tags"].values()) == [
        "educacion",
        "movilidad",
        "tecnologia",
    ]
    page.click("#undo")
    assert "Journaled as change 2." in page.inner_text("#result")
    assert conn.execute("SELECT data::jsonb FROM stores WHERE id = %s", (YOUNG_WOLF,)).fetchone()[0] == before


def test_case_3_credentials_are_saved_and_the_password_is_nowhere_on_the_page(page, conn, keyring):
    page.goto(f"/console/allies/{BARNES}")
    page.click("text=Set credentials (case 3)")
    assert page.get_attribute("#password", "type") == "password"
    page.fill("#username", CASE3_USERNAME)
    page.fill("#password", CASE3_PASSWORD)
    page.click("#save")
    assert page.url.endswith(f"/console/allies/{BARNES}?saved=credentials")
    assert "Credentials saved, encrypted." in page.inner_text("main")
    assert page.inner_text("#credentials").startswith("set, version 1, key test-key-1")
    assert CASE3_PASSWORD not in page.content()
    assert stored_credentials(conn, keyring, BARNES) == (CASE3_USERNAME, CASE3_PASSWORD)


def test_an_uploaded_log_is_triaged_like_the_cli_does(page):
    expected = triage.analyze([str(EXAMPLE_LOG)])
    page.goto("/console/triage")
    page.set_input_files("#log", EXAMPLE_LOG)
    page.click("#upload")
    assert figure(page, "total-lines") == str(expected.total_lines)
    assert figure(page, "failed-requests") == str(expected.failed_requests)
    assert figure(page, "affected-count") == str(len(expected.affected()))
    assert figure(page, "still-affected") == str(len(expected.still_affected()))
    assert page.locator("svg.chart rect").count() >= 10  # the timeline's columns
    first = expected.affected()[0].ally_id
    page.click(f"#affected >> text={first}")
    assert page.inner_text("#ally-id") == first


def test_a_forged_form_is_refused_in_the_browser_too(page, conn):
    before = conn.execute("SELECT data::jsonb FROM stores WHERE id = %s", (YOUNG_WOLF,)).fetchone()[0]
    page.goto(f"/console/allies/{YOUNG_WOLF}/fix")
    page.fill("#owner", "Mallory")
    # What a page elsewhere would send: the form without this session's token.
    page.eval_on_selector("form.card input[name=csrf_token]", "field => { field.value = 'forged' }")
    page.click("#preview-button")
    assert "did not come from this console" in page.inner_text("#problem")
    assert page.problems == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
    page.problems.clear()
    page.goto(f"/console/allies/{YOUNG_WOLF}")
    assert conn.execute("SELECT data::jsonb FROM stores WHERE id = %s", (YOUNG_WOLF,)).fetchone()[0] == before


def test_keyboard_first_the_skip_link_then_the_content(page):
    page.goto("/console/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "q"  # the search box comes first in main
    page.keyboard.type("Young-Wolf")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/console/allies\?q=Young-Wolf$"))
    assert YOUNG_WOLF in page.inner_text("#results")


# Every element holding text: its colour against the first opaque background behind it, by the
# WCAG 2 formula (relative luminance); large text (24 px, or 18.66 px bold) needs 3:1, the rest 4.5:1.
LOW_CONTRAST = """() => {
  const rgb = (text) => text.match(/[0-9.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const linear = (c) => (c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
  };
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const colour = rgb(getComputedStyle(e).backgroundColor);
      if (colour.length < 4 || colour[3] > 0) return colour.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const element of document.querySelectorAll("body *")) {
    const ownText = [...element.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!ownText || !element.getClientRects().length) continue;
    const style = getComputedStyle(element);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
    const fill = element instanceof SVGElement ? style.fill : style.color;
    const [a, b] = [luminance(rgb(fill)), luminance(background(element))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) low.push(`${element.tagName} "${element.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return low;
}"""


def test_every_text_has_enough_contrast(page):
    page.goto("/console/triage")
    page.set_input_files("#log", EXAMPLE_LOG)
    page.click("#upload")
    assert page.evaluate(LOW_CONTRAST) == []  # the report: figures, chart labels, states
    for path in PAGES:
        page.goto(path)
        assert page.evaluate(LOW_CONTRAST) == [], path


def test_a_phone_width_needs_no_sideways_scrolling(page):
    page.set_viewport_size(PHONE)
    for path in PAGES:
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)


def test_spanish_from_the_browser_and_the_switch_back_to_english(browser, served_app):
    context = browser.new_context(base_url=served_app, locale="es-CO")
    tab = context.new_page()
    tab.goto("/console/")
    assert tab.inner_text("h1") == "Resumen" and tab.get_attribute("html", "lang") == "es"
    tab.click("text=English")
    tab.goto("/console/triage")
    assert tab.inner_text("h1") == "Log triage (case 4)"  # the choice is remembered
    context.close()


def test_reading_works_with_javascript_off(browser, served_app):
    context = browser.new_context(base_url=served_app, java_script_enabled=False)
    tab = context.new_page()
    tab.goto("/console/")
    assert tab.locator("svg.chart rect").count() == 9 and tab.inner_text("#stores-count") == "300"
    context.close()


def test_with_tokens_the_console_asks_once_and_keeps_an_httponly_strict_cookie(browser, serve, tmp_path):
    base = serve(ALLIES_API_TOKENS=",".join(f"{name}:{token}" for name, token in TOKENS.items()))
    said = (tmp_path / f"serve-{base.rsplit(':', 1)[1]}.out").read_text()
    assert f"allies: the support console is at {base}/console/" in said  # where to go, on start
    context = browser.new_context(base_url=base)
    tab = context.new_page()
    tab.goto(f"/console/allies/{BARNES}")
    assert "/console/sign-in" in tab.url
    tab.fill("#token", "wrong-token-0123456789")
    tab.click("button[type=submit]")
    assert "That token is not valid." in tab.inner_text("main")
    tab.fill("#token", TOKENS["luis"])
    tab.click("main button[type=submit]")
    assert tab.url == f"{base}/console/allies/{BARNES}" and tab.inner_text(".actor") == "luis"
    (cookie,) = [c for c in context.cookies() if c["name"] == "allies_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert tab.evaluate("document.cookie") == ""  # out of reach of any script
    tab.goto("/console/triage")
    assert tab.inner_text(".actor") == "luis"  # asked once
    tab.click("text=Sign out")
    assert "/console/sign-in" in tab.url
    context.close()


def test_the_screenshots_command_photographs_every_page(browser, served_app, tmp_path):
    shots = take(browser, served_app, tmp_path)
    assert [path.name for path in shots] == [
        "credentials.png", "overview.png", "search.png", "fix-preview.png", "fix-applied.png", "ally.png",
        "triage.png", "overview-phone-es.png",
    ]  # fmt: skip
    assert all(path.stat().st_size > 10_000 for path in shots)
    documented = set(re.findall(r"console/([a-z-]+\.png)", (ROOT / "docs" / "console.md").read_text()))
    assert documented == {path.name for path in shots}
