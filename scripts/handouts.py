"""`make html`: the executed notebooks as static HTML handouts, with a contents page
in course order (lessons, then each chapter's exercises after its last lesson).

    python scripts/handouts.py OUTPUT_DIR
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"


def course_order() -> list[Path]:
    """Lessons by number; an exercise notebook NN-… right after lesson NN."""
    lessons = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
    exercises = sorted((NOTEBOOKS / "exercises").glob("[0-9][0-9]-*.ipynb"))
    ordered: list[Path] = []
    for lesson in lessons:
        ordered.append(lesson)
        ordered += [e for e in exercises if e.name[:2] == lesson.name[:2]]
    return ordered


def title_of(notebook: nbformat.NotebookNode, fallback: str) -> str:
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def build(output: Path) -> list[tuple[str, str]]:
    output.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    entries = []
    for path in course_order():
        notebook = nbformat.read(path, as_version=4)
        body, _resources = exporter.from_notebook_node(notebook)
        name = ("exercises-" if path.parent.name == "exercises" else "") + path.stem + ".html"
        (output / name).write_text(body, encoding="utf-8")
        entries.append((name, title_of(notebook, path.stem)))
    items = "\n".join(f'  <li><a href="{html.escape(href)}">{html.escape(title)}</a></li>'
                      for href, title in entries)
    (output / "index.html").write_text(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
        "<title>queue_exp: Kafka and RabbitMQ side by side</title></head>\n<body>\n"
        "<h1>queue_exp: message queues, hands-on</h1>\n"
        "<p>Apache Kafka and RabbitMQ side by side. Each page is a notebook as it ran "
        "against real brokers.</p>\n"
        f"<ol>\n{items}\n</ol>\n</body></html>\n", encoding="utf-8")
    return entries


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "build" / "html")
    for href, title in build(target):
        print(f"{href:60} {title}")
    print(f"contents: {target / 'index.html'}")
