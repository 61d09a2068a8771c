"""The README and docs/: short enough to read, and every link leads somewhere."""

from __future__ import annotations

from pathlib import Path

from tests.docs_examples import (
    PAGES,
    ROOT,
    Example,
    broken_links,
    checked_markers,
    in_tmp,
    runnable_examples,
)


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


def test_every_output_checked_marker_belongs_to_a_runnable_example() -> None:
    """A marker elsewhere (before a block that is not the output of a runnable example) would
    tell the doc writer an output is checked that is not."""
    checked = [e for e in runnable_examples() if e.output is not None]
    assert len(checked) == len(checked_markers()), checked_markers()
    assert len(checked) >= 8


def test_a_checked_output_matches_line_for_line_with_ellipses_within_a_line() -> None:
    example = Example(ROOT / "README.md", 1, "", output="a\n✓ dataset  .../data/x.csv: 3 rows\n")
    assert example.matches("a\n✓ dataset  /home/me/repo/data/x.csv: 3 rows\n")
    assert not example.matches("a\n✓ dataset  /home/me/repo/data/x.csv: 4 rows\n")
    assert not example.matches("a\n")
    assert not example.matches("a\n✓ dataset  /r/data/x.csv: 3 rows\nmore\n")


def test_an_examples_tmp_files_move_to_its_own_folder(tmp_path: Path) -> None:
    script = "cat > /tmp/a.yaml\ncmp /tmp/run$run.jsonl /var/tmp/b x/tmp/c"
    assert in_tmp(script, tmp_path) == (
        f"cat > {tmp_path}/a.yaml\ncmp {tmp_path}/run$run.jsonl /var/tmp/b x/tmp/c"
    )


def test_an_example_reading_a_file_an_earlier_one_wrote_runs_after_it() -> None:
    by_name = {e.name: e for e in runnable_examples()}
    cmp_runs = next(e for e in by_name.values() if "cmp /tmp/run1.jsonl" in e.script)
    assert [b.name for b in cmp_runs.before] == [
        e.name for e in by_name.values() if "cat > /tmp/fraud-demo.yaml" in e.script
    ]
