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


def test_a_dependency_is_declared_up_to_its_next_major_or_before_1_0_its_next_minor(tmp_path):
    # GIVEN the pinned files, every declared dependency at 2.3.4 but uv, still at 0.x
    names = sorted({*release.CONSTRUCT_DEPENDENCIES, *release.RUNTIME_DEPENDENCIES} - {"uv"})
    (tmp_path / "requirements.txt").write_text("".join(f"{name}==2.3.4\n" for name in names))
    (tmp_path / "requirements-dev.txt").write_text("-r requirements.txt\nuv==0.13.8\n")

    # WHEN the wheel's dependencies are declared
    declared = release.dependencies(tmp_path)

    # THEN 2.x stops before 3, and 0.13 before 0.14 (a 0.x release may break what the previous one did)
    assert declared == sorted([*(f"{name}>=2.3.4,<3" for name in names), "uv>=0.13.8,<0.14"])
