"""The README's and docs/'s fenced examples and links, read for the tests that check them.

A runnable example (a bash block that runs the program on its own, see `runnable_examples`) is
run as written by tests/integration/test_docs_examples.py. Its output is compared with the page
too when the page says so: the line `<!-- output checked -->` right before the fenced block that
follows the command block. The block must then show the whole output, line for line, where
`...` in a line stands for any text on that line (doctest's ellipsis, kept to one line: a path
that differs between machines, say). Mark only examples whose output does not depend on the
clock or on random ids (an unseeded profile's ids, `now` timestamps, pacing to the millisecond).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_CHECKED = "<!-- output checked -->"
_TMP = re.compile(r"(?<![\w./-])/tmp/([\w.$-]+)")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
# Examples that need what a test machine has not: a broker or S3 of its own, docker, kubectl, a
# process to signal, or a long run.
_NOT_RUNNABLE = ("localhost", "s3://", "docker", "kubectl", "kill ", "make ", "pip install", "&\n")


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    script: str
    output: str | None = None
    """The output the page shows and marks `<!-- output checked -->`; None when not checked."""
    before: tuple[Example, ...] = ()
    """Earlier examples of the page that write a /tmp file this one reads (run first, as a reader
    following the page has)."""

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def tmp_files(self) -> set[str]:
        """The names of the /tmp files the script mentions."""
        return set(_TMP.findall(self.script))

    def matches(self, output: str) -> bool:
        """Whether `output` is the page's, line for line, `...` standing for any text."""
        assert self.output is not None
        expected = self.output.rstrip("\n").split("\n")
        got = output.rstrip("\n").split("\n")
        return len(expected) == len(got) and all(
            re.fullmatch(".*".join(map(re.escape, want.split("..."))), line) is not None
            for want, line in zip(expected, got, strict=True)
        )


def in_tmp(script: str, folder: Path) -> str:
    """`script` with its /tmp/ files in `folder` instead (examples run side by side must not
    share them)."""
    return _TMP.sub(lambda m: f"{folder}/{m.group(1)}", script)


def runnable_examples() -> list[Example]:
    """Every bash block that runs the program on its own (a dry run, `rate`, `check` on the
    embedded defaults), as written."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        on_page: list[Example] = []
        fences = list(_FENCE.finditer(text))
        for m, after in zip(fences, [*fences[1:], None], strict=False):
            lang, body = m.group(1), m.group(2)
            if lang != "bash" or "streaming-producer" not in body:
                continue
            if any(word in body for word in _NOT_RUNNABLE):
                continue
            if not re.search(r"--dry-run|streaming-producer (rate|check)", body):
                continue
            output = None
            if after is not None and text[m.end() : after.start()].strip() == _CHECKED:
                output = after.group(2)
            example = Example(page, text.count("\n", 0, m.start()) + 1, body, output)
            shared = [e for e in on_page if e.tmp_files & example.tmp_files]
            before = dict.fromkeys(b for e in shared for b in (*e.before, e))
            example = replace(example, before=tuple(before))
            on_page.append(example)
        found += on_page
    return found


def checked_markers() -> list[str]:
    """Where a page marks output as checked (the marker on a line of its own), `page:line`
    each."""
    return [
        f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
        for page in PAGES
        for text in [page.read_text(encoding="utf-8")]
        for m in re.finditer(f"^{re.escape(_CHECKED)}$", text, re.M)
    ]


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
