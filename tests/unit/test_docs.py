"""The README and docs/: short enough to read, and every link leads somewhere."""

from __future__ import annotations

from tests.docs_examples import PAGES, ROOT, broken_links, runnable_examples


def test_the_readme_stays_short_and_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 400
    opening = readme.split("```bash\n", 1)[1].splitlines()
    assert opening[0].startswith("make run")
    assert opening[1].startswith("make test")


def test_every_relative_link_and_anchor_resolves() -> None:
    assert broken_links() == []


def test_user_docs_speak_of_the_original_producer_not_the_seed() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "the seed" not in text.lower(), page.name
        assert "seed's" not in text.lower(), page.name


def test_there_are_runnable_examples_to_check() -> None:
    pages = {example.page.name for example in runnable_examples()}
    assert {"README.md", "realistic-streams.md", "datasets-and-messages.md"} <= pages
