"""The project's Markdown pages read as a test reads them: links, headings and the commands they show."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# What a reader types: the project's targets and commands, and the AWS, CDK and SAM CLIs.
COMMAND_START = re.compile(r"^(?:[A-Z_]+=\S+ )*(?:make|\.venv/bin/\S+|aws|npx|sam|cdk|python -m|some-producer)(?: |$)")


def pages() -> list[Path]:
    """README.md and every page under docs/."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def without_code(text: str) -> str:
    """The page without its fenced blocks and code spans (where brackets are not links)."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.DOTALL))


def links(text: str) -> list[str]:
    """The targets of the page's Markdown links."""
    return re.findall(r"\]\(([^)\s]+)\)", without_code(text))


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", text, flags=re.DOTALL), flags=re.MULTILINE)
    return {anchor(heading) for heading in headings}


@dataclass(frozen=True)
class Command:
    page: Path
    text: str
    in_block: bool  # a line of a ```bash block, rather than a code span in the prose

    def __str__(self) -> str:
        return f"{relative(self.page)}: {self.text}"


def block_commands(text: str) -> list[str]:
    """Each command line of the page's ```bash blocks: continuations joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for raw in re.sub(r"\\\n\s*", "", block).splitlines():
            line = re.sub(r"\s+#\s.*$", "", raw).strip()  # a trailing comment (` # ` never occurs in a value)
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def span_commands(text: str) -> list[str]:
    """The code spans of the prose that are whole commands."""
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    spans = (" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose))
    return [span for span in spans if COMMAND_START.match(span)]


def commands(page: Path) -> list[Command]:
    text = page.read_text()
    return [Command(page, c, True) for c in block_commands(text)] + [
        Command(page, c, False) for c in span_commands(text)
    ]
