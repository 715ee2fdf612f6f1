"""`make html`: every executed notebook becomes a static page, listed in course order."""

import re
import subprocess
import sys

from queue_exp.config import REPO_ROOT


def test_handouts_cover_every_notebook_in_course_order(tmp_path):
    run = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "handouts.py"),
                          str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    index = (tmp_path / "index.html").read_text()
    links = re.findall(r'href="([^"]+)"', index)
    lessons = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    assert [link[:-5] for link in links if not link.startswith("exercises-")] == lessons
    exercises = sorted((REPO_ROOT / "notebooks" / "exercises").glob("[0-9][0-9]-*.ipynb"))
    for exercise in exercises:  # right after the lesson whose number it carries
        at = links.index(f"exercises-{exercise.stem}.html")
        before = [link for link in links[:at] if not link.startswith("exercises-")][-1]
        assert before[:2] == exercise.name[:2], (exercise.name, before)
    for link in links:
        page = (tmp_path / link).read_text()
        assert "<h1" in page and "jp-OutputArea" in page  # executed: outputs are there
    plotted = [link for link in links if "data:image/png;base64" in (tmp_path / link).read_text()]
    assert plotted, "no page carries a plot"
