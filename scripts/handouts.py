"""`make html`: the course as a static site a student can use offline: every
executed notebook as a page (Sphinx with myst-nb, the Furo theme: navigation,
search, readable on a phone), and a contents page in course order with each
notebook's promise and time. Nothing is fetched from a CDN.

    python scripts/handouts.py OUTPUT_DIR
"""

from __future__ import annotations

import base64
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"

CONF = '''\
project = "queue_exp"
html_title = "queue_exp: message queues, hands-on"
extensions = ["myst_nb"]
nb_execution_mode = "off"  # the notebooks are committed executed, as they ran
nb_merge_streams = True  # one output block per stream: a progress bar is one line
myst_enable_extensions = ["colon_fence", "html_image"]
html_theme = "furo"
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
exclude_patterns = ["_build"]
copyright = "the queue_exp authors (MIT licence)"
html_static_path = ["_static"]
html_css_files = ["handouts.css"]
'''

# the notebooks' code is up to 100 columns: on a wide screen the page is wide enough
# for it (furo's 46em shows about 86); narrower screens keep furo's layout
CSS = """\
@media (min-width: 100em) {
  .content { width: 54em; }
}
"""

# the course's chapters, by the notebooks' first two digits
CHAPTERS = (
    ("00", "01", "Getting started"),
    ("02", "04", "Kafka: a log"),
    ("05", "07", "RabbitMQ: queues and exchanges"),
    ("08", "09", "Side by side"),
    ("10", "11", "Where the lines blur"),
    ("12", "13", "More than one machine"),
)


@dataclass
class Page:
    path: Path
    name: str  # document name in the site, e.g. exercises/04-kafka-exercises
    title: str
    promise: str  # the notebook's "You will: ..." (empty if it has none)
    time: str


def course_order() -> list[Path]:
    """Lessons by number; an exercise notebook NN-… right after lesson NN."""
    lessons = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
    exercises = sorted((NOTEBOOKS / "exercises").glob("[0-9][0-9]-*.ipynb"))
    ordered: list[Path] = []
    for lesson in lessons:
        ordered.append(lesson)
        ordered += [e for e in exercises if e.name[:2] == lesson.name[:2]]
    return ordered


def page_of(path: Path) -> Page:
    """Title, promise and time from a notebook's first Markdown cell."""
    notebook = nbformat.read(path, as_version=4)
    first = next((c.source for c in notebook.cells if c.cell_type == "markdown"), "")
    title = next((line[2:].strip() for line in first.splitlines() if line.startswith("# ")),
                 path.stem)
    flat = " ".join(first.split())
    promise = re.search(r"\*\*You will:\*\*\s*(.+?)(?=\*\*[A-Z][a-z]+:\*\*|!\[|$)", flat)
    time = re.search(r"\*\*Time:\*\*\s*(.+?)(?:\.\s|$)", flat)
    name = ("exercises/" if path.parent.name == "exercises" else "") + path.stem
    return Page(path, name, title, promise.group(1).strip() if promise else "",
                time.group(1).strip().rstrip(".") if time else "")


def settle_streams(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What a terminal or JupyterLab shows of a cell's printed output: consecutive
    writes to one stream joined, and each line only as it stands after its last
    carriage return (a progress bar redraws itself with ``\\r``: one line, not one
    line per redraw)."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        settled = []
        for output in cell.get("outputs", []):
            previous = settled[-1] if settled else None
            if (output.output_type == "stream" and previous is not None
                    and previous.output_type == "stream" and previous.name == output.name):
                previous.text += output.text
            else:
                settled.append(output)
        for output in settled:
            if output.output_type == "stream":
                output.text = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1]
                                        for line in output.text.split("\n"))
        cell.outputs = settled
    return notebook


LIVE_VIEW = re.compile(r'<iframe[^>]+src="http://(?:127\.0\.0\.1|localhost):\d+/live')


def still_of(name: str, broker: str) -> Path:
    """The picture of the live view for notebook ``name``: its own still where one was
    taken (docs/live-12-kafka.png: the cluster's leaders and ISRs after a kill), else
    the broker's (docs/live-kafka.png, docs/live-rabbitmq.png)."""
    own = REPO / "docs" / f"live-{Path(name).name[:2]}-{broker}.png"
    return own if own.exists() else REPO / "docs" / f"live-{broker}.png"


def still_live_views(notebook: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """A page has no API behind it: where a notebook showed the live view (an IFrame
    on the kernel's own server), the page shows a still of it instead."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            html = output.get("data", {}).get("text/html", "")
            if not LIVE_VIEW.search(html):
                continue
            broker = "rabbitmq" if "show=rabbitmq" in html else "kafka"
            picture = base64.b64encode(still_of(name, broker).read_bytes()).decode()
            output["data"] = {"text/html": (
                "<p><em>Here the live view ran, showing the brokers change as the cells "
                "below ran; a still of it:</em></p>"
                f'<img alt="the live view" style="max-width:100%" '
                f'src="data:image/png;base64,{picture}">')}
    return notebook


def index_page(pages: list[Page]) -> str:
    lines = [
        "# queue_exp: message queues, hands-on", "",
        "Apache Kafka and RabbitMQ side by side, on real brokers. Each page is a "
        "notebook as it ran; open the notebooks themselves in JupyterLab (`make lab`) "
        "to run them. Every chapter ends with exercises.", "",
    ]
    chapter = None
    for page in pages:
        number = page.path.name[:2]
        heading = next((title for first, last, title in CHAPTERS if first <= number <= last),
                       "More")
        if heading != chapter:
            chapter = heading
            lines += [f"## {heading}", ""]
        link = f"[{page.title}]({page.name}.ipynb)"
        lines.append(f"* **{link}**" + (f" · {page.time}" if page.time else ""))
        if page.promise:
            lines += ["", f"  You will: {page.promise}", ""]
    lines += ["", "```{toctree}", ":hidden:", ":maxdepth: 1", ""]
    lines += [page.name for page in pages]
    lines += ["```", ""]
    return "\n".join(lines)


def build(output: Path) -> list[Page]:
    """Stage the notebooks with their diagrams, write the contents page and the
    Sphinx configuration, and build the site into ``output``."""
    from sphinx.cmd.build import build_main

    pages = [page_of(path) for path in course_order()]
    with tempfile.TemporaryDirectory(prefix="handouts-") as staging:
        source = Path(staging)
        for page in pages:
            target = source / f"{page.name}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            notebook = nbformat.read(page.path, as_version=4)
            nbformat.write(still_live_views(settle_streams(notebook), page.name), target)
        for images in (NOTEBOOKS / "img", NOTEBOOKS / "exercises" / "img"):
            if images.is_dir():
                shutil.copytree(images, source / images.relative_to(NOTEBOOKS))
        (source / "index.md").write_text(index_page(pages), encoding="utf-8")
        (source / "conf.py").write_text(CONF, encoding="utf-8")
        (source / "_static").mkdir()
        (source / "_static" / "handouts.css").write_text(CSS, encoding="utf-8")
        if output.exists():
            shutil.rmtree(output)
        status = build_main(["-q", "-b", "html", "-d", str(source / "_doctrees"),
                             str(source), str(output)])
    if status != 0:
        raise SystemExit(f"sphinx-build failed (exit {status})")
    return pages


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "build" / "html")
    for page in build(target):
        print(f"{page.name:50} {page.time:>12}  {page.title}")
    print(f"contents: {target / 'index.html'}")
