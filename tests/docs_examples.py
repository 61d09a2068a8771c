"""The README's and docs/'s fenced examples and links, read for the tests that check them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_LINK = re.compile(r"\]\(([^)\s]+)\)")
# Examples that need what a test machine has not: a broker or S3 of its own, docker, kubectl, a
# process to signal, or a long run.
_NOT_RUNNABLE = ("localhost", "s3://", "docker", "kubectl", "kill ", "make ", "pip install", "&\n")


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    script: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def runnable_examples() -> list[Example]:
    """Every bash block that runs the program on its own (a dry run, `rate`, `check` on the
    embedded defaults), as written."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            lang, body = m.group(1), m.group(2)
            if lang != "bash" or "streaming-producer" not in body:
                continue
            if any(word in body for word in _NOT_RUNNABLE):
                continue
            if not re.search(r"--dry-run|streaming-producer (rate|check)", body):
                continue
            found.append(Example(page, text.count("\n", 0, m.start()) + 1, body))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def broken_links() -> list[str]:
    """Relative links (and #anchors) of the README and docs/ that lead nowhere."""
    broken = []
    for page in PAGES:
        text = _FENCE.sub("", page.read_text(encoding="utf-8"))
        for target in _LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            where = (page.parent / path).resolve() if path else page
            if not where.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and where.suffix == ".md" and anchor not in anchors(where):
                broken.append(f"{page.name}: {target} (no such heading)")
    return broken
