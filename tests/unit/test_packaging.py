"""Synth without a CPython 3.14: the asset is built without bytecode, and one line says why."""

from __future__ import annotations

import pytest

from infra import packaging, runtime_python
from infra.packaging import Target


def test_without_a_runtime_python_synth_goes_on_and_says_so_in_one_line(monkeypatch, capsys):
    def no_python() -> list[str]:
        raise runtime_python.RuntimePythonError(
            "no CPython 3.14 found: install python3.14 (or `uv python install 3.14`)\nmore detail"
        )

    monkeypatch.setattr(runtime_python, "install", no_python)

    assert packaging.bytecode_compiler(Target("3.14", "arm64")) is None
    err = capsys.readouterr().err
    assert (
        err == "asset built without bytecode: no CPython 3.14 found: install python3.14 (or `uv python install 3.14`)\n"
    )


@pytest.mark.parametrize("version", ["3.13", "3.15"])
def test_a_target_of_another_python_gets_no_bytecode(version, capsys):
    assert packaging.bytecode_compiler(Target(version, "arm64")) is None
    assert "only CPython 3.14 is looked for" in capsys.readouterr().err
