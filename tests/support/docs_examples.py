"""The command examples of the docs, written from the commands' real output.

A ```console block whose first line is `$ make plan ...` holds that command's output below it, as a
terminal 100 columns wide prints it. `python -m tests.support.docs_examples` runs each one and writes
its output into the page; tests/unit/test_docs.py fails while a page differs from it. A plan with a
FAIL row exits 1 (make then reports "Error 1"): its output is still the example's.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")))
# Commands whose output is deterministic (no clock, no network): the only ones a page may show as output.
GENERATED = ("make plan ",)
COLUMNS = 100
BLOCK = re.compile(r"```console\n\$ (?P<command>[^\n]+)\n(?P<output>.*?)```", flags=re.DOTALL)


def examples(text: str) -> list[re.Match[str]]:
    """The generated blocks of a page."""
    return [match for match in BLOCK.finditer(text) if match["command"].startswith(GENERATED)]


def output_of(command: str) -> str:
    """What ``command`` prints, each line stripped of the padding a table adds on its right."""
    argv = shlex.split(command)
    if argv[0] == "make":  # make's own lines (the recipe echoed, entering a folder) are not the command's
        argv[1:1] = ["--silent", "--no-print-directory"]
    env = {**os.environ, "COLUMNS": str(COLUMNS), "NO_COLOR": "1", "TERM": "dumb"}
    run = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    checks_failed = run.returncode == 1 or (argv[0] == "make" and run.stderr.rstrip().endswith("Error 1"))
    if run.returncode != 0 and not checks_failed:
        raise RuntimeError(f"{command!r} exited {run.returncode}: {run.stderr.strip()[-2000:]}")
    return "".join(f"{line.rstrip()}\n" for line in run.stdout.splitlines())


def rewritten(text: str) -> str:
    """The page with each generated block's output replaced by the command's."""
    for match in reversed(examples(text)):
        text = text[: match.start("output")] + output_of(match["command"]) + text[match.end("output") :]
    return text


def main() -> int:
    for page in PAGES:
        text = page.read_text()
        if examples(text) and (new := rewritten(text)) != text:
            page.write_text(new)
            sys.stdout.write(f"wrote {page.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
