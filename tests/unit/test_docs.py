"""README.md starts small and leads to every page of docs/ once; every link resolves; examples are real."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from infra.settings import StackSettings
from local import demo
from tests.support import docs_examples
from tests.support.docs import DOCS, README, ROOT, anchors, links, pages, relative

NEWCOMER_LINES = 60
README_LINES = 210


def _target(page: Path, link: str) -> tuple[Path, str]:
    path, _, fragment = link.partition("#")
    return ((page.parent / path).resolve() if path else page), fragment


def _local_links(page: Path) -> list[str]:
    return [link for link in links(page.read_text()) if not re.match(r"^[a-z]+:", link)]


@pytest.mark.parametrize("page", pages(), ids=relative)
def test_every_relative_link_resolves_to_a_file_and_heading(page: Path):
    for link in _local_links(page):
        target, fragment = _target(page, link)
        assert target.exists(), f"{relative(page)}: {link} does not exist"
        if fragment:
            assert fragment in anchors(target.read_text()), f"{relative(page)}: {link} names no heading of its page"


def test_every_docs_page_is_linked_once_from_the_readme():
    # GIVEN the pages of docs/ a reader can start from (each decision is reached through their index)
    entry_pages = {*DOCS.glob("*.md"), DOCS / "decisions" / "README.md"}

    # WHEN the README's links are counted by the page they lead to
    linked = Counter(_target(README, link)[0] for link in _local_links(README) if "docs/" in link)

    # THEN each page is linked exactly once, and nothing else under docs/ is
    assert {relative(p): linked[p.resolve()] for p in entry_pages} == {relative(p): 1 for p in entry_pages}
    assert set(linked) <= {p.resolve() for p in entry_pages}


def test_every_decision_is_in_the_index_once_and_numbered_in_order():
    decisions = sorted((DOCS / "decisions").glob("[0-9][0-9][0-9]-*.md"))
    index = Counter(link for link in links((DOCS / "decisions" / "README.md").read_text()))
    assert index == Counter({d.name: 1 for d in decisions})
    assert [int(d.name[:3]) for d in decisions] == list(range(1, len(decisions) + 1))
    for decision in decisions:
        assert decision.read_text().startswith("# "), f"{decision.name} has no title"


def test_no_file_refers_to_the_single_decisions_file_it_was_split_from():
    # Every file of the project (git's list: what a clone holds), comments and strings included.
    grep = subprocess.run(
        ["git", "grep", "-l", "decisions\\.md", "--", ".", ":(exclude)tests/unit/test_docs.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert grep.returncode in {0, 1}, grep.stderr
    assert grep.stdout.split() == [], "these name docs/decisions.md; name the file of the decision in docs/decisions/"


def test_the_readme_is_short_and_its_first_screen_holds_the_newcomer_path():
    lines = README.read_text().splitlines()
    first = "\n".join(lines[:NEWCOMER_LINES])
    assert len(lines) <= README_LINES
    for command in ("make local", "make new-event TYPE=", "make unit", "make invoke EVENT=", "make test"):
        assert command in first, f"{command!r} is not in the README's first {NEWCOMER_LINES} lines"
    # The two commands, exactly so, each with what it does.
    assert re.search(r"^make local +# runs the product locally", first, flags=re.MULTILINE)
    assert re.search(r"^make test +# runs the whole suite", first, flags=re.MULTILINE)


def test_the_sections_of_the_readme_come_in_a_newcomers_order():
    headings = re.findall(r"^## (.+)$", re.sub(r"```.*?```", "", README.read_text(), flags=re.DOTALL), re.MULTILINE)
    assert headings[:5] == ["Start here", "What happens to each message", "Add an event type", "Deploy",
                            "Where to go next"]  # fmt: skip


def test_the_local_run_summary_shown_is_the_demo_mixes_outcome():
    # GIVEN the summary docs/local.md shows for `make local`
    shown = dict(re.findall(r"^│ ([a-z][^│]*?) +│ +(\d+) │$", (DOCS / "local.md").read_text(), flags=re.MULTILINE))

    # WHEN the demo mix (with its offloaded event) is counted by the state each message must reach
    mix = demo.demo_mix(lambda body: ("pointer", {}))
    expected = Counter(message.expected for message in mix)
    retried = [m for m in mix if isinstance(m.body, dict) and m.body["payload"].get("simulate") in {"flaky", "fail"}]

    # THEN each row is what the run must print
    assert shown == {
        "published": str(len(mix)),
        "succeeded": str(expected[demo.SUCCEEDED]),
        "retried (listed at least once)": str(len(retried)),
        "quarantined": str(expected[demo.QUARANTINED]),
        "quarantined after retries": str(expected[demo.RETRIES_EXHAUSTED]),
        "in the DLQ without a reason": "0",
        "still in flight": "0",
    }


def test_the_worker_settings_table_shows_the_stage_defaults():
    # GIVEN configuration.md's table from the polling worker's variables to the stage's settings
    rows = re.findall(r"^\|[^|]+\| `([a-z_]+)` \((\d+)\)", (DOCS / "configuration.md").read_text(), re.M)

    # THEN each default shown is the settings model's
    defaults = StackSettings()
    assert len(rows) == 6
    for name, value in rows:
        assert float(getattr(defaults, name)) == float(value), name


def test_the_generated_examples_are_the_commands_real_output():
    found = 0
    for page in pages():
        text = page.read_text()
        for example in docs_examples.examples(text):
            found += 1
            expected = docs_examples.output_of(example["command"])
            assert example["output"] == expected, (
                f"{relative(page)}: the output of `{example['command']}` changed; "
                "run python -m tests.support.docs_examples"
            )
    assert found >= 1


def test_the_figures_read_out_of_an_example_are_in_its_output():
    # GIVEN the paragraph after each generated example that reads it ("Reading it: ...")
    text = (DOCS / "sizing.md").read_text()
    [example] = docs_examples.examples(text)
    reading = text[example.end() :].split("\n\n", 2)[1]
    assert reading.startswith("Reading it:")

    # THEN every figure it quotes is one the output or the command shows
    shown = set(re.findall(r"\d[\d,.]*", example["output"] + example["command"]))
    quoted = set(re.findall(r"\d[\d,.]*\d|\d", reading))
    assert quoted <= shown, quoted - shown
