"""make release TAG=v<version>: the tag is made only on a clean tree whose changelog has the version's section."""

from __future__ import annotations

import pytest

from infra import release
from tests.unit.test_rehearse import _repository


def test_release_tag_is_refused_on_a_dirty_tree_a_missing_changelog_section_or_a_taken_tag(tmp_path):
    git = _repository(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1.2.0"\n')
    (tmp_path / "CHANGELOG.md").write_text("# Changelog\n\n## 1.1.0\n")
    with pytest.raises(release.ReleaseError, match="uncommitted changes"):
        release.tag("v1.2.0", tmp_path)
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "1.2.0")
    with pytest.raises(release.ReleaseError, match=r"CHANGELOG.md has no '## 1\.2\.0' section"):
        release.tag("v1.2.0", tmp_path)
    (tmp_path / "CHANGELOG.md").write_text("# Changelog\n\n## 1.2.0\n")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-am", "changelog")

    with pytest.raises(release.ReleaseError, match=r"makes the tag v1\.2\.0, not v1\.3\.0"):
        release.tag("v1.3.0", tmp_path)
    assert release.tag("v1.2.0", tmp_path) == "v1.2.0"
    with pytest.raises(release.ReleaseError, match=r"the tag v1\.2\.0 exists"):
        release.tag("v1.2.0", tmp_path)
