"""The web app in a real browser: web/e2e's Playwright specs against a whole suite.

One module-scoped suite (rate limits lifted, a bootstrap admin, the web app served at the
public URL) and one test per spec file, each running `npx playwright test <spec>` in web/
with the suite's URL, admin, mail directory and the system's Chromium in its environment.
Nothing is skipped: without Chromium, web/node_modules or web/dist the tests fail and say
what to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from taskmesh_localrun.testing import LocalRun

from .conftest import SHARED_SUITE_RATE_LIMITS, StartSuite

pytestmark = pytest.mark.e2e

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
SPECS = sorted((WEB_DIR / "e2e").glob("*.spec.ts"))
ADMIN_EMAIL = "web-e2e-admin@example.com"
ADMIN_PASSWORD = "web e2e admin password, long enough"
SPEC_TIMEOUT_S = 240
"""A spec file's whole Playwright run; its tests have timeouts of their own (30-60 s)."""
SETUP_HINT = "`make test` installs web/node_modules and builds web/dist before the tests"


@dataclass(frozen=True)
class BrowserTools:
    """What running the specs needs on this machine."""

    npx: str
    chromium: str


def find_browser_tools() -> BrowserTools:
    """Chromium, npx, web/node_modules with Playwright and a built web/dist; fail if missing."""
    chromium = (
        os.environ.get("CHROMIUM_PATH")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    npx = shutil.which("npx")
    missing = []
    if chromium is None or not os.access(chromium, os.X_OK):
        missing.append(
            "Chromium (set CHROMIUM_PATH or install it: `apt-get install chromium`; "
            "Playwright's own browser downloads are not used)"
        )
    if npx is None:
        missing.append("Node.js's npx (install Node.js 20.19 or newer)")
    if not (WEB_DIR / "node_modules" / "@playwright" / "test").is_dir():
        missing.append(f"{WEB_DIR / 'node_modules'} with @playwright/test ({SETUP_HINT})")
    if not (WEB_DIR / "dist" / "index.html").is_file():
        missing.append(f"the built web app {WEB_DIR / 'dist'} ({SETUP_HINT})")
    if missing or chromium is None or npx is None:
        pytest.fail(
            "the browser tests cannot run without:\n- " + "\n- ".join(missing), pytrace=False
        )
    return BrowserTools(npx=npx, chromium=chromium)


@pytest.fixture(scope="module")
def browser_tools() -> BrowserTools:
    return find_browser_tools()


@pytest.fixture(scope="module")
def web_suite(browser_tools: BrowserTools, start_suite: StartSuite) -> Iterator[LocalRun]:
    """The whole suite with the web app, a bootstrap admin and the rate limits lifted."""
    run = start_suite(
        BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
        BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
        **SHARED_SUITE_RATE_LIMITS,
    )
    try:
        run.wait_until_readyz()
        yield run
    finally:
        run.close()


def playwright_env(run: LocalRun, tools: BrowserTools) -> dict[str, str]:
    """The specs' environment: the suite to test, its admin and mail, the browser to drive."""
    env = {
        **os.environ,
        "TASKMESH_URL": run.url,
        "ADMIN_EMAIL": ADMIN_EMAIL,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MAIL_DIR": str(run.state["mail_dir"]),
        "CHROMIUM_PATH": tools.chromium,
        "FORCE_COLOR": "0",  # Playwright's output ends up in assertion messages
    }
    if screenshots := os.environ.get("SCREENSHOT_DIR"):
        env["SCREENSHOT_DIR"] = str(Path(screenshots).resolve())
    return env


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name.removesuffix(".spec.ts") for spec in SPECS])
def test_playwright_spec_passes(
    spec: Path, web_suite: LocalRun, browser_tools: BrowserTools
) -> None:
    name = spec.name.removesuffix(".spec.ts")
    command = [
        browser_tools.npx,
        "playwright",
        "test",
        str(spec.relative_to(WEB_DIR)),
        # Each spec file its own artifacts directory: a run empties its own only.
        f"--output=test-results/artifacts/{name}",
    ]
    try:
        result = subprocess.run(
            command,
            cwd=WEB_DIR,
            env=playwright_env(web_suite, browser_tools),
            capture_output=True,
            text=True,
            timeout=SPEC_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as timeout:
        # On a timeout the output is bytes even with text=True.
        output = timeout.stdout or b""
        printed = output.decode(errors="replace") if isinstance(output, bytes) else output
        pytest.fail(f"{' '.join(command)} ran longer than {SPEC_TIMEOUT_S} s:\n{printed}")

    assert result.returncode == 0, (
        f"{' '.join(command)} exited with {result.returncode} "
        f"(traces and screenshots in {WEB_DIR / 'test-results' / 'artifacts' / name}):\n"
        f"{result.stdout}\n{result.stderr}\n"
        f"suite output:\n{web_suite.output()}"
    )
