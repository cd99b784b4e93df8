"""The page at / in real headless Chromium (Debian's ``chromium`` package, driven by playwright's Python API).

Skipped when no Chromium is installed, unless ``ERCKIT_REQUIRE_BROWSER=1`` (set by .ci/run), which makes
a missing browser a failure. ``ERCKIT_CHROMIUM`` names another executable.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from live_server import running
from tiny_models import LABELS


def chromium() -> str | None:
    return os.environ.get("ERCKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = chromium()
    if executable is None or not Path(executable).exists():
        if os.environ.get("ERCKIT_REQUIRE_BROWSER") == "1":
            pytest.fail("ERCKIT_REQUIRE_BROWSER=1 but no chromium is installed (apt-get install chromium)")
        pytest.skip("no chromium installed (apt-get install chromium); ERCKIT_REQUIRE_BROWSER=1 makes this a failure")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@pytest.mark.slow
def test_two_turns_typed_in_the_page_get_their_emotions_and_bars(browser, model_dir: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with running(model_dir, api_key="page-key") as url:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        elsewhere: list[str] = []

        def only_this_server(route) -> None:  # the page must work offline: nothing but the server itself
            if route.request.url.startswith(url):
                route.continue_()
            else:
                elsewhere.append(route.request.url)
                route.abort()

        page.route("**/*", only_this_server)
        page.goto(f"{url}/?api_key=page-key")
        page.wait_for_selector("#status.open", timeout=20_000)
        assert "neutral, joy, anger" in page.inner_text("#model")

        turns = [("Ross", "we were on a break"), ("Rachel", "no we were not")]
        for speaker, text in turns:
            page.fill("#speaker", speaker)
            page.fill("#text", text)
            page.press("#text", "Enter")
        # Locator waits, not wait_for_function: the page's Content-Security-Policy forbids eval.
        expect(page.locator(".turn .label:not(.pending)")).to_have_count(2, timeout=20_000)

        expected = httpx.post(
            f"{url}/v1/predict", headers={"x-api-key": "page-key"}, timeout=30,
            json={"utterances": [{"speaker": s, "text": t} for s, t in turns]},
        ).json()["dialogues"][0]["utterances"]
        rows = page.query_selector_all(".turn")
        assert len(rows) == 2
        for row, (speaker, text), wanted in zip(rows, turns, expected):
            assert row.query_selector(".who").inner_text().startswith(speaker)
            assert row.query_selector(".said").inner_text() == text
            assert row.query_selector(".label").inner_text().lower() == wanted["prediction"]
            bars = row.query_selector_all(".bar")
            assert sorted(b.get_attribute("data-label") for b in bars) == sorted(LABELS)
            widths = {b.get_attribute("data-label"): b.bounding_box()["width"] for b in bars}
            track = row.query_selector(".track").bounding_box()["width"]
            for label, width in widths.items():  # each bar drawn at its probability's share of the track
                assert width == pytest.approx(track * wanted["probabilities"][label], abs=2.0)
            assert row.query_selector(".bar.top").get_attribute("data-label") == wanted["prediction"]

        page.click("#demos button.demo >> nth=1")
        expect(page.locator(".turn")).to_have_count(4, timeout=20_000)
        expect(page.locator(".label.pending")).to_have_count(0, timeout=20_000)
        assert all(label.inner_text().lower() in LABELS for label in page.query_selector_all(".turn .label"))
        screenshot = tmp_path / "page.png"
        page.screenshot(path=str(screenshot), full_page=True)
        page.close()
    assert screenshot.stat().st_size > 5_000
    assert elsewhere == []
