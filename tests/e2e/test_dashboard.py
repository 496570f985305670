"""The live dashboard in a real browser (Debian's Chromium, driven by Playwright), and `offload report`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from offload_server import OffloadServer
from offload_server.testing import unused_port
from offload_tools.telemetry import read_telemetry

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser():  # type: ignore[no-untyped-def]
    if CHROMIUM is None:
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    return playwright, playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])


def requests_served(server: OffloadServer) -> float:
    """Every request the server has answered or refused so far, by its own /metrics."""
    text = httpx.get(f"{server.http_url}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("offload_requests_total{"))


def test_the_dashboard_shows_frames_live_and_its_switch_makes_the_client_local_only(
    server: OffloadServer, tmp_path: Path
) -> None:
    port, link_port = unused_port(), unused_port()
    out = tmp_path / "run"
    # Through the link emulator on its LTE profile (12 Mbit/s each way, 30 ms one way), which the page
    # draws beside the client's own estimate of the link.
    linkem = [str(BIN / "offload"), "linkem", "--listen", f"127.0.0.1:{link_port}", "--upstream", server.grpc_target,
              "--uplink", "lte", "--downlink", "lte"]  # fmt: skip
    link = subprocess.Popen(linkem, stdout=subprocess.DEVNULL)
    cmd = [str(BIN / "offload"), "run", "--sample", "--frames", "40", "--fps", "4",
           "--server", f"127.0.0.1:{link_port}", "--policy", "always-remote", "--dashboard",
           "--dashboard-port", str(port), "--uplink-trace", "lte", "--out", str(out)]  # fmt: skip
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    playwright, chromium = browser()
    try:
        page = chromium.new_page(viewport={"width": 1200, "height": 900})
        deadline = time.monotonic() + 60
        while True:  # the dashboard starts with the client
            try:
                page.goto(f"http://127.0.0.1:{port}/")
                break
            except Exception:
                assert time.monotonic() < deadline and run.poll() is None, "the dashboard never came up"
                time.sleep(0.3)
        page.wait_for_function("records.length >= 5", timeout=60_000)
        # Before the switch frames go to the server (one may fall back to the device on a busy machine).
        assert page.evaluate("records.some(r => r.where === 'remote' && r.uplink_bytes > 0)")
        # What the (here: constant, 12 Mbit/s LTE profile) uplink trace delivers, beside the estimate.
        assert page.evaluate("records.every(r => Math.abs(r.trace_mbit_s - 12) < 0.5)")
        # ... and the client's own estimate of it, once it has measured a few round trips.
        page.wait_for_function("records.some(r => r.rtt_ms !== null && r.uplink_mbit_s !== null)", timeout=60_000)
        assert page.locator("#paths tbody tr").count() >= 1
        drawn = "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v > 0)"
        assert page.locator("#latency").evaluate(drawn) and page.locator("#uplink").evaluate(drawn)
        # The battery: each frame's energy drawn, and the drain per minute reckoned from it.
        assert page.locator("#energy").evaluate(drawn)
        assert "J/min" in (page.locator("#drain").text_content() or "")
        assert page.evaluate("records.every(r => r.energy_mj >= r.radio_mj && r.radio_mj >= 0)")
        assert page.locator("#frame").evaluate("img => img.naturalWidth") > 0  # the current frame, boxes drawn

        page.click("button[data-mode='local-only']")
        page.wait_for_function("document.getElementById('status').textContent.includes('local-only')")
        switched_at = page.evaluate("records.length")
        # The frame in flight when the switch landed may have been sent; from the next one on, nothing is.
        page.wait_for_function(f"records.length >= {switched_at + 1}", timeout=60_000)
        served_at_switch = requests_served(server)
        page.wait_for_function(f"records.length >= {switched_at + 5}", timeout=60_000)
        after = page.evaluate(f"records.slice({switched_at + 1})")
        assert len(after) >= 4 and all(r["privacy"] == "local-only" and r["where"] == "local" for r in after)
        assert all(r["uplink_bytes"] == 0 for r in after)
        assert all(r["radio_mj"] == 0 for r in after)  # nothing sent, nothing charged to the radio
        # Counted where it matters: the server received no request while those frames ran.
        assert requests_served(server) == served_at_switch
        (ROOT / "out").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "out" / "dashboard.png"), full_page=True)
    finally:
        chromium.close()
        playwright.stop()
        code = run.wait(120)
        link.terminate()
        link.wait(30)
        output = run.stdout.read() if run.stdout else ""
        if run.stdout:
            run.stdout.close()
        assert code == 0, output
    records = read_telemetry(out / "telemetry.jsonl")
    assert len(records) == 40 and records[-1].privacy == "local-only" and records[-1].uplink_bytes == 0

    # The same run as one static page, for sharing.
    done = subprocess.run([str(BIN / "offload"), "report", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    playwright, chromium = browser()
    try:
        page = chromium.new_page()
        page.goto((out / "report.html").as_uri())
        assert page.evaluate("records.length") == 40
        assert page.locator("#frames").text_content() == "40"
    finally:
        chromium.close()
        playwright.stop()
