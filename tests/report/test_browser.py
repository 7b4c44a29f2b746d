"""report.html in a real browser: headless Chromium renders it, and the numbers are on screen
(the history's trend charts and per-server scan time per GB too).

Skipped where no Chromium is installed, except under CI (`CI` set), where a missing browser
is a failure: `.ci/run` installs Debian's `chromium` for this test.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.report import Report, build_report, write_report
from orchestrator.report.trend import NightPoint, ServerPoint, Trend
from tests.report.test_attention import night
from tests.report.test_report import sample_report, sample_run

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)

if CHROMIUM is None and os.environ.get("CI"):
    pytest.fail("CI is set but no chromium is installed (.ci/run should install it)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # root in a container has no user namespace sandbox
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the inflated scanlines of a PNG (enough to tell blank from not)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


@pytest.fixture
def page(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    write_report(sample_report(), out, ("json", "html"))
    return out / "report.html"


def test_chromium_renders_the_report_with_its_numbers(tmp_path: Path, page: Path) -> None:
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "Exit code 1" in html
    for label, number in [("targets", 6), ("infected files", 3), ("failed", 2), ("skipped", 1)]:
        assert f"<b>{number}</b><span>{label}</span>" in html
    assert "web01" in html
    # the hostile path stayed text: no element was made of it
    assert "<script>alert" not in html


def test_chromium_screenshot_is_a_rendered_page_not_a_blank_one(tmp_path: Path, page: Path) -> None:
    shot = tmp_path / "report.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    width, height, raw = png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 1600)
    # a blank page inflates to a handful of distinct byte values; text and charts to many
    assert len(set(raw)) > 128  # measured: 44 for a page with one word, 256 for the report


def trend_report() -> Report:
    """The sample report with 30 nights of history: web02's scans grow twice as slow."""
    report = sample_report()
    start = report.run.started_at - timedelta(days=29)
    nights = tuple(
        NightPoint(
            f"run-{n}",
            start + timedelta(days=n),
            1,
            6,
            3 + n % 4,
            n % 3 or None,
            n % 2,
            3600.0 + 60 * n,
        )
        for n in range(30)
    )
    servers = {
        name: tuple(
            ServerPoint(start + timedelta(days=n), 100.0 * (1 + n / 29 * slowdown), 10**9)
            for n in range(30)
        )
        for name, slowdown in (("web01", 0.0), ("web02", 1.0), ("web03", 0.1))
    }
    return replace(report, history=Trend(nights=nights, servers=servers))


def test_chromium_renders_the_history_trend_and_the_slowdown(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_report(trend_report(), out, ("json", "html"))
    dom = chromium(tmp_path, "--dump-dom", (out / "report.html").as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "History: the last nights" in html
    for caption in ("Infected files", "New infected files", "Failed targets", "Wall time"):
        assert f"<figcaption>{caption}</figcaption>" in html
    # 30 bars in each chart but the new files' (no bar for the nights without a comparison)
    assert html.count("<rect") >= 30 * 3 + 20
    speed = html.split("Scan time per GB", 1)[1]
    rows = re.findall(r"<tr><td>(web\d\d)</td>", speed)
    assert rows[0] == "web02", "the server that slowed down most comes first"
    assert "+35%" in speed  # 200 s/GB tonight against a median of 148 over the month before
    shot = tmp_path / "trend.png"
    done = chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", (out / "report.html").as_uri()
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(set(png_pixels(shot.read_bytes())[2])) > 128


def test_chromium_shows_what_needs_attention_first_deferred_and_unknown_included(
    tmp_path: Path,
) -> None:
    """A night with deferred targets and `unknown` outcomes: the rendered page opens with the
    section, names each of them with why, and gives the command that scans them again."""
    out = tmp_path / "out"
    write_report(build_report(sample_run(), night()), out, ("json", "html"))
    dom = chromium(tmp_path, "--dump-dom", (out / "report.html").as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    body = html.split("<body>", 1)[1]
    assert body.index('id="attention"') < body.index('class="cards"') < body.index("Servers")
    section = body.split('id="attention"', 1)[1].split("</section>", 1)[0]
    assert "Needs attention (7)" in section
    rows = re.findall(
        r"<tr><td class=\"human\">([^<]+)</td><td class=\"path\">([^<]+)</td>", section
    )
    assert ("deferred", "web02/erin/home") in rows
    assert ("outcome unknown", "web02/frank/home /home/x/public_html/shell.php") in rows
    assert "window closed at 06:00" in section
    command = f"clamfleet run inventory.yaml --only-failed {out / 'report.json'}"
    assert command in section
    # outcomes coloured by who still has to act: the unknown one is for a person
    assert re.search(r'<td class="human" title="needs a person">unknown</td>', html)
    assert re.search(r'<td class="handled" title="handled">quarantined</td>', html)
