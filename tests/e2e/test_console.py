"""The web console in a real browser (Debian's chromium, driven by Playwright) against a real gateway and worker."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import GatewayProcess, WorkerProcess, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def call(url: str, method: str = "GET", body: object = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as res:
        return json.loads(res.read())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, WorkerProcess]]:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    gateway = GatewayProcess(endpoint, str(tmp_path_factory.mktemp("data")))
    worker = WorkerProcess(endpoint)
    try:
        end = time.monotonic() + 180
        while True:
            try:
                call(gateway.url + "/ready")
                break
            except OSError:
                if time.monotonic() > end:
                    pytest.fail(f"not ready:\n{gateway.output()[-2000:]}\n{worker.output()[-2000:]}")
                time.sleep(0.2)
        yield gateway, worker
    finally:
        worker.stop()
        gateway.stop()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra: make setup")
    if not CHROMIUM.exists():
        pytest.fail(
            "the console test needs Debian's chromium: apt-get install chromium (scripts/setup.sh does, as root)"
        )
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.on("dialog", lambda dialog: dialog.accept())  # confirm() before deleting
        yield page
        browser.close()


def test_console_pages(stack: tuple[GatewayProcess, WorkerProcess], page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gateway, _ = stack
    shots = tmp_path / "screenshots"
    shots.mkdir()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # 1-2. open the console, create a collection (and delete another, through the confirmation)
    page.goto(gateway.url + "/ui")
    for name in ("notes", "scratch"):
        page.fill("#new-name", name)
        page.click("#create")
        page.wait_for_selector(f'tr[data-collection="{name}"]')
    page.click('tr[data-collection="scratch"] button.danger')
    page.wait_for_selector('tr[data-collection="scratch"]', state="detached")
    assert [c["name"] for c in call(gateway.url + "/collections")["collections"]] == ["notes"]  # type: ignore[index]

    # 3. two documents through the API
    docs = [
        {"id": "ml", "text": "Machine learning is a subset of artificial intelligence", "metadata": {"topic": "ai"}},
        {"id": "paris", "text": "Paris is the capital of France", "metadata": {"topic": "geo"}},
    ]
    call(gateway.url + "/collections/notes/documents", "POST", {"documents": docs})
    page.reload()
    page.wait_for_selector('tr[data-collection="notes"] >> text=2')
    page.screenshot(path=shots / "collections.png")

    page.goto(gateway.url + "/ui/#/collection/notes")
    page.click("#documents >> text=paris")
    page.wait_for_selector("#doc-text >> text=Paris is the capital of France")
    assert "vector norm 1.0000" in page.inner_text("#doc-detail")
    page.screenshot(path=shots / "collection.png")

    # 4. the playground finds the right document first
    page.goto(gateway.url + "/ui/#/search")
    page.select_option("#search-collection", "notes")
    page.fill("#search-query", "What is machine learning?")
    page.fill("#search-filter", "")
    page.click("#search-run")
    page.wait_for_selector(".hit-id")
    assert page.locator(".hit-id").all_inner_texts() == ["ml", "paris"]
    assert "query embedded: true" in page.inner_text("#search-meta")
    page.screenshot(path=shots / "search.png")

    page.goto(gateway.url + "/ui/#/embed")
    page.click("#embed-run")
    page.wait_for_selector("#embed-heat")
    assert page.inner_text("#embed-dim") == "384"
    page.screenshot(path=shots / "embed.png")

    # 5. the workers page lists the worker, and its charts come from /metrics
    page.goto(gateway.url + "/ui/#/workers")
    page.wait_for_selector("tr.worker")
    worker_row = page.inner_text("tr.worker")
    listed = call(gateway.url + "/workers")
    assert listed["queue_depth"] == 0 and len(listed["workers"]) == 1  # type: ignore[index]
    assert set(listed["workers"][0]) == {  # type: ignore[index]
        "worker_id",
        "host",
        "pid",
        "models",
        "backend",
        "device",
        "precision",
        "capacity",
        "inflight",
    }
    assert "all-MiniLM-L6-v2" in worker_row and ("openvino" in worker_row or "mlx" in worker_row)
    # The page samples /metrics every 3 s: texts embedded after its first sample show up as a rate.
    call(gateway.url + "/embed", "POST", {"texts": [f"text {i}" for i in range(20)]})
    page.wait_for_function("Number(document.querySelector('#rate').textContent) > 0", timeout=20_000)
    assert page.locator("#chart-rate polyline").get_attribute("points").count(",") >= 2
    assert float(page.inner_text("#p95").split()[0]) > 0
    page.screenshot(path=shots / "workers.png")

    assert errors == []
    assert sorted(p.name for p in shots.iterdir()) == [
        "collection.png",
        "collections.png",
        "embed.png",
        "search.png",
        "workers.png",
    ]


def test_console_asks_for_an_api_key_and_keeps_it_for_the_session(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = "akidb_console_test_" + "k" * 16
    record = f"[{{name: console, sha256: {hashlib.sha256(key.encode()).hexdigest()}, scopes: [read, write, admin]}}]"
    gateway = GatewayProcess(f"tcp://127.0.0.1:{free_port()}", str(tmp_path / "data"), "--set", f"auth.keys={record}")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    try:
        end = time.monotonic() + 60
        while True:  # /health is open: no worker is needed to list collections
            try:
                call(gateway.url + "/health")
                break
            except OSError:
                assert time.monotonic() < end, gateway.output()[-2000:]
                time.sleep(0.2)
        body = json.dumps({"name": "secret", "dimension": 384}).encode()
        urllib.request.urlopen(urllib.request.Request(gateway.url + "/collections", body, headers), timeout=30)

        page.goto(gateway.url + "/ui")
        page.wait_for_selector("#key-dialog[open]")  # the first call got 401: the page asks
        page.fill("#key-input", "not-the-key")
        page.press("#key-input", "Enter")
        page.wait_for_selector("#key-dialog[open]")  # refused again: asked again
        page.fill("#key-input", key)
        page.press("#key-input", "Enter")
        page.wait_for_selector('tr[data-collection="secret"]')
        assert page.evaluate("sessionStorage.getItem('akidb-key')") == key
        page.screenshot(path=tmp_path / "key-accepted.png")
    finally:
        gateway.stop()
    assert key not in gateway.output()  # the key never reaches the gateway's log
