"""index.html in a real headless Chromium: no console errors, no network, sorting and filters work.

CI needs `apt-get install -y chromium` (Debian, /usr/bin/chromium) and `pip install playwright`;
`playwright install` is not needed because the test launches the system Chromium.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
from pathlib import Path

import pytest

from benchmark.leaderboard import build_leaderboard

FIXTURES = Path(__file__).parent / "fixtures" / "records"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("site")
    build_leaderboard(FIXTURES, output, verify=False)
    return output


class _LoggingHandler(http.server.SimpleHTTPRequestHandler):
    requested: list[str]

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self.requested.append(self.path)
        super().do_GET()


@pytest.fixture()
def server(site):
    """A loopback HTTP server for the built site; yields (base URL, list of requested paths)."""
    requested: list[str] = []
    handler = type("Handler", (_LoggingHandler,), {"requested": requested})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(handler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requested
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_page_has_no_external_references(site):
    text = (site / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", text)
    assert "<script src" not in text
    assert text.count("data:image/png;base64,") == len(list(site.glob("*.png")))
    assert "default-src 'none'" in text


def visible_column(page, table_id: str, header: str) -> list[str]:
    """Text of one column for the rows of a table that filters leave visible."""
    return page.evaluate(
        """([tableId, header]) => {
            const table = document.getElementById(tableId);
            const names = Array.from(table.tHead.rows[0].cells).map(cell => cell.textContent.trim());
            const column = names.indexOf(header);
            return Array.from(table.tBodies[0].rows)
                .filter(row => !row.classList.contains('hidden'))
                .map(row => row.cells[column].textContent.trim());
        }""", [table_id, header])


def as_numbers(texts: list[str]) -> list[float]:
    return [float(text) for text in texts if text != "–"]


def test_page_in_chromium(server, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent; install it with `apt-get install -y chromium`")
    sync_api = pytest.importorskip("playwright.sync_api")
    base_url, served = server
    page_url = f"{base_url}/index.html"

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_url, wait_until="load")

            images_loaded = page.evaluate(
                "Array.from(document.images).every(image => image.complete && image.naturalWidth > 0)")
            initial = visible_column(page, "results", "mean")

            page.click("#results th:text-is('mean')")
            ascending = visible_column(page, "results", "mean")
            page.click("#results th:text-is('mean')")
            descending = visible_column(page, "results", "mean")
            sort_state = page.get_attribute("#results th:text-is('mean')", "aria-sort")

            page.select_option("#filter-task", "alpaca")
            alpaca_tasks = visible_column(page, "results", "task")
            shown_count = page.text_content("[data-count-for='results']")
            ranking_tasks = visible_column(page, "rankings", "tasks")
            page.select_option("#filter-task", "")
            page.select_option("#filter-track", "native")
            native_tracks = visible_column(page, "results", "track")
            page.select_option("#filter-track", "")
            flag_visible = page.is_visible("#results tr.contaminated .flag")

            page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
        finally:
            browser.close()

    assert errors == []
    assert [url for url in requests if not url.startswith("data:")] == [page_url]
    assert served == ["/index.html"]
    assert images_loaded
    assert ascending != initial
    assert as_numbers(ascending) == sorted(as_numbers(ascending))
    assert as_numbers(descending) == sorted(as_numbers(descending), reverse=True)
    assert ascending[-1] == descending[-1] == "–"  # the method without ok runs stays last
    assert sort_state == "descending"
    assert alpaca_tasks == ["alpaca"] * 4
    assert shown_count == "4"
    assert ranking_tasks
    assert all("alpaca" in tasks.split(", ") for tasks in ranking_tasks)
    assert native_tracks == ["native"]
    assert flag_visible
    assert (tmp_path / "leaderboard.png").stat().st_size > 0
