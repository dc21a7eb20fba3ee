"""Every stage setting is documented where it is declared, and docs/configuration.md's table is made from it."""

from __future__ import annotations

from pathlib import Path

from infra.settings import StackSettings, settings_table

ROOT = Path(__file__).resolve().parents[2]


def test_every_stage_setting_has_a_description():
    undocumented = sorted(name for name, field in StackSettings.model_fields.items() if not field.description)
    assert not undocumented, f"give these StackSettings fields a description=: {undocumented}"


def test_the_docs_table_of_settings_is_the_model():
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    table = settings_table()
    assert table in configuration, (
        f"docs/configuration.md's table of settings differs from StackSettings (infra/settings.py):\n{table}"
    )
    assert all(f"| `{name}` |" in table for name in StackSettings.model_fields)
