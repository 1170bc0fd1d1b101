"""The review page in headless Chromium (Debian's package, driven by Playwright).

A store of drawn defects is served by uvicorn on 127.0.0.1; the test filters, gives
verdicts with the keyboard, reloads to see them kept, opens a detail view, exports
the verdicts and checks the folder. Screenshots go to /tmp/rope-review-*.png.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import uvicorn

from rope_inspect.cli import main
from rope_inspect.review.app import ReviewSettings, create_app
from rope_inspect.storage import DefectQuery, StoreView
from rope_inspect.storage.sample import write_sample_store

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    store = tmp_path / "store"
    write_sample_store(store, count=24, seed=11)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(ReviewSettings(store=store))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", store
    server.should_exit = True
    thread.join(10)
    structlog.reset_defaults()  # main() below points structlog at captured stderr


@pytest.fixture
def page(served: tuple[str, Path]) -> Iterator[Any]:
    base, _ = served
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.problems = []  # console errors and requests that leave the server
        tab.on(
            "console",
            lambda m: m.type == "error" and tab.problems.append(m.text),
        )
        tab.on(
            "request",
            lambda r: r.url.startswith(base) or tab.problems.append(r.url),
        )
        yield tab
        browser.close()


def verdicts_in_store(store: Path) -> dict[str, tuple[str | None, str | None]]:
    view = StoreView.open(store)
    records = view.list_defects(DefectQuery(limit=100)).items
    view.close()
    return {r.id: (r.verdict, r.verdict_by) for r in records}


def lines_in_store(store: Path) -> list[str]:
    view = StoreView.open(store)
    records = view.list_defects(DefectQuery(limit=100)).items
    view.close()
    return [r.line for r in records]


def filter_by_line(page: Any, store: Path) -> None:
    cards = page.locator(".card")
    line_b = sum(1 for line in lines_in_store(store) if line == "line-b")
    assert 0 < line_b < 24
    page.select_option("select[name=line]", "line-b")
    page.click("button.primary")
    sync_api.expect(page).to_have_url(re.compile(r"line=line-b"))
    sync_api.expect(cards).to_have_count(line_b)
    page.click("a.reset")
    sync_api.expect(cards).to_have_count(24)


def review_with_keys(page: Any) -> list[str]:
    """Reviewer qa-anna: j d f d u -> defect, false alarm, unreviewed."""
    expect, cards = sync_api.expect, page.locator(".card")
    page.fill("#reviewer", "qa-anna")
    page.dispatch_event("#reviewer", "change")
    page.evaluate("document.activeElement.blur()")
    ids = [cards.nth(n).get_attribute("data-id") for n in range(3)]
    page.keyboard.press("j")
    expect(cards.nth(0)).to_have_class(re.compile("selected"))
    for key, n, verdict in (
        ("d", 0, "defect"),
        ("f", 1, "false_alarm"),
        ("d", 2, "defect"),
    ):
        page.keyboard.press(key)
        expect(cards.nth(n)).to_have_attribute("data-verdict", verdict)
    page.keyboard.press("u")
    expect(cards.nth(2)).to_have_attribute("data-verdict", "")
    expect(page.locator("header [data-count=defect]")).to_have_text("1")
    expect(page.locator("header [data-count=false_alarm]")).to_have_text("1")
    return ids


def detail_round_trip(page: Any) -> str:
    """Open the 5th defect with o, mark it a false alarm with f, go back with Esc."""
    expect = sync_api.expect
    for _ in range(4):
        page.keyboard.press("j")
    page.keyboard.press("o")
    expect(page).to_have_url(re.compile(r"/defect/"))
    detail_id = page.locator("#detail").get_attribute("data-id")
    page.keyboard.press("f")
    expect(page.locator("#detail")).to_have_attribute("data-verdict", "false_alarm")
    page.screenshot(path="/tmp/rope-review-detail.png", full_page=True)
    page.keyboard.press("Escape")
    expect(page.locator(".card")).to_have_count(24)
    return str(detail_id)


def test_filter_review_with_keys_reload_export(
    page: Any, served: tuple[str, Path], tmp_path: Path
) -> None:
    expect = sync_api.expect
    base, store = served
    page.goto(base + "/")
    cards = page.locator(".card")
    expect(cards).to_have_count(24)
    assert page.locator("svg.chart").count() == 3
    filter_by_line(page, store)
    ids = review_with_keys(page)

    page.reload()
    for n, verdict in enumerate(("defect", "false_alarm", "")):
        expect(cards.nth(n)).to_have_attribute("data-verdict", verdict)
    stored = verdicts_in_store(store)
    assert stored[ids[0]] == ("defect", "qa-anna")
    assert stored[ids[1]] == ("false_alarm", "qa-anna")
    assert stored[ids[2]] == (None, None)
    page.keyboard.press("h")
    expect(page.locator("body")).to_have_class(re.compile("show-heat"))
    page.screenshot(path="/tmp/rope-review-grid.png")
    detail_id = detail_round_trip(page)
    assert verdicts_in_store(store)[detail_id][0] == "false_alarm"

    out = tmp_path / "dataset"
    argv = ["review", "--store", str(store), "export", "--verdict", "all"]
    assert main([*argv, "--out", str(out), "--size", "128"]) == 0
    assert len(list((out / "train" / "good").glob("*.png"))) == 1
    assert len(list((out / "validation" / "good").glob("*.png"))) == 1
    masks = list((out / "ground_truth").glob("*/*_mask.png"))
    images = [p for p in (out / "test").glob("*/*.png") if p.parent.name != "good"]
    assert len(masks) == len(images) == 1
    assert not page.problems, page.problems
