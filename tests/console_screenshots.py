"""Screenshots of the support console for docs/console.md, taken by Playwright in Debian's
Chromium (no browser download): `make screenshots`.

It serves a throwaway allies (its own home, embedded PostgreSQL and 300 stores), walks the pages
as a support engineer would (a store fix, credentials, the triage of log/example.log) and writes
docs/console/*.png. tests/test_console_browser.py drives the browser with the same helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import free_port
from helpers.http import wait_for_http

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "console"
EXAMPLE_LOG = ROOT / "log" / "example.log"
YOUNG_WOLF = "0d4f7a40-651d-44fb-8744-04d9b31ef844"
BARNES = "1f585fc9-4926-468c-a728-eb34d80e9ea1"
INSTALL_CHROMIUM = "apt-get install chromium (Debian's package), or set ALLIES_CHROMIUM to a Chromium binary"
DESKTOP, PHONE = {"width": 1280, "height": 1000}, {"width": 390, "height": 844}


def chromium_path() -> str | None:
    return os.environ.get("ALLIES_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def launch(playwright):
    """Headless Chromium from the system, never one Playwright downloads."""
    return playwright.chromium.launch(executable_path=chromium_path())


def take(browser, base_url: str, out: Path) -> list[Path]:
    """Walk the console and screenshot each page into `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    page = browser.new_page(base_url=base_url, viewport=DESKTOP)

    def shot(name: str, full_page: bool = True) -> None:
        shots.append(out / f"{name}.png")
        page.screenshot(path=shots[-1], full_page=full_page)

    def submit(selector: str) -> None:
        """Click a button that sends its form, and wait for the page it leads to: a screenshot
        taken while that page loads fails (seen under load: the triage takes a while)."""
        with page.expect_navigation():
            page.click(selector)

    page.goto(f"/console/allies/{BARNES}/credentials")
    page.fill("#username", "aliado_addi")
    page.fill("#password", "}sxh7_5}BdJ4K:Qf")
    shot("credentials")
    submit("#save")
    page.goto("/console/")
    shot("overview")
    page.goto("/console/allies?q=Ba")
    shot("search")
    page.goto(f"/console/allies/{YOUNG_WOLF}/fix")
    page.fill("#owner", "Old-Wolf")
    page.select_option("#old_tag", "finanzas")
    page.select_option("#new_tag", "educacion")
    page.fill("#reason", "ticket SUP-1234")
    submit("#preview-button")
    shot("fix-preview")
    submit("#apply")
    shot("fix-applied")
    page.goto(f"/console/allies/{YOUNG_WOLF}")
    shot("ally")
    page.goto("/console/triage")
    page.set_input_files("#log", EXAMPLE_LOG)
    submit("#upload")
    shot("triage", full_page=False)  # the figures, the timeline and the first allies
    page.set_viewport_size(PHONE)
    page.goto("/console/?lang=es")
    shot("overview-phone-es")
    page.close()
    return shots


# -- make screenshots: a throwaway allies to photograph ----------------------------------------


def main() -> None:
    from playwright.sync_api import sync_playwright

    if chromium_path() is None:
        raise SystemExit(f"no Chromium found: {INSTALL_CHROMIUM}")
    allies = str(Path(sys.executable).parent / "allies")
    with tempfile.TemporaryDirectory(prefix="allies-screenshots-") as home:
        env = {
            **os.environ,
            "ALLIES_HOME": home,
            "DB_PORT": str(free_port()),
            "ALLIES_LOG_FILE": f"{home}/server.log",
        }
        for name in ("DATABASE_URL", "ALLIES_API_TOKENS", "ALLIES_API_TOKENS_FILE"):
            env.pop(name, None)
        subprocess.run([allies, "db", "seed", "--if-empty"], env=env, check=True)
        port = free_port()
        server = subprocess.Popen([allies, "serve", "--port", str(port), "--workers", "1"], env=env)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/health", timeout=60, process=server)
            with sync_playwright() as playwright:
                browser = launch(playwright)
                for path in take(browser, f"http://127.0.0.1:{port}", OUT):
                    print(path.relative_to(ROOT))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
            subprocess.run([allies, "db", "stop"], env=env, check=False)


if __name__ == "__main__":
    main()
