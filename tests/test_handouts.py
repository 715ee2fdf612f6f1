"""`make html`: the course as a static site, every executed notebook a page, in
course order, with its diagrams, and nothing fetched from another host."""

import os
import re
import subprocess
import sys

import pytest

from queue_exp.config import REPO_ROOT


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "handouts.py"), str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def test_every_notebook_is_a_page_listed_in_course_order(site):
    index = (site / "index.html").read_text()
    links = [link.removesuffix(".html") for link in re.findall(
        r'<a class="reference internal" href="([^"#]+\.html)"', index)]
    links = list(dict.fromkeys(link for link in links if link != "index"))
    lessons = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    assert [link for link in links if not link.startswith("exercises/")] == lessons
    exercises = sorted((REPO_ROOT / "notebooks" / "exercises").glob("[0-9][0-9]-*.ipynb"))
    for exercise in exercises:  # right after the lesson whose number it carries
        at = links.index(f"exercises/{exercise.stem}")
        before = [link for link in links[:at] if not link.startswith("exercises/")][-1]
        assert before[:2] == exercise.name[:2], (exercise.name, before)
    for link in links:
        page = (site / f"{link}.html").read_text()
        assert "<h1" in page and "cell_output" in page, link  # executed: outputs are there


def test_pages_carry_the_diagrams_and_plots_and_fetch_nothing_from_elsewhere(site):
    pages = {p.relative_to(site).as_posix(): p.read_text() for p in site.rglob("*.html")}
    lessons = {name: html for name, html in pages.items() if re.match(r"\d\d-", name)}
    with_diagram = [name for name, html in lessons.items() if re.search(r'src="[^"]*\.svg"', html)]
    assert with_diagram, "no lesson page shows a diagram"
    assert any("data:image/png;base64" in html or '.png"' in html for html in lessons.values())
    for name, html in pages.items():
        external = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', html)
        assert not external, (name, external)


def test_a_progress_bar_is_one_line_on_the_page(site):
    page = (site / "09-performance-measured.html").read_text()
    bars = re.findall(r"producer settings:\s+\d+%", page)
    assert len(bars) == 1, bars


def test_pages_render_in_chromium_offline_on_a_desk_and_on_a_phone(site):
    from tests.api import browser as chromium_helper

    if chromium_helper.missing_reason():
        if os.environ.get("CI"):
            pytest.fail(chromium_helper.missing_reason())
        pytest.skip(chromium_helper.missing_reason())
    pages = ["index.html", *(p.name for p in sorted(site.glob("[0-9][0-9]-*.html")))]
    problems: list[str] = []

    def on_console(message) -> None:
        if message.type == "error":
            problems.append(message.text)

    def on_request(request) -> None:
        if not request.url.startswith(("file:", "data:")):
            problems.append(f"fetched {request.url}")

    with chromium_helper.chromium() as browser:
        for width, height in ((1280, 720), (390, 844), (1600, 900)):
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            page.on("console", on_console)
            page.on("request", on_request)
            for name in pages:
                page.goto((site / name).as_uri())
                broken = page.evaluate(
                    "[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                    ".map(i => i.src)")
                assert not broken, (name, width, broken)
                # nothing wider than the screen but what scrolls inside its own box
                overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
                assert overflow <= 1, (name, width, overflow)
                if width >= 1600:  # a wide screen shows every line of code whole
                    scrolls = page.evaluate(
                        "[...document.querySelectorAll('div.cell_input div.highlight pre')]"
                        ".filter(e => e.scrollWidth > e.clientWidth + 1).length")
                    assert scrolls == 0, (name, width, scrolls)
            context.close()
            assert not problems, (width, problems)
