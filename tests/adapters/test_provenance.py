"""A run's provenance: the git state of its code (a real repository in a temporary
folder) and the versions of the packages it ran with."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from loopml.adapters.distributions import installed_versions
from loopml.adapters.provenance import TRACKED_PACKAGES, GitProvenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=dev@example.org", "-c", "user.name=dev", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "src" / "train.py").write_text("print('v1')\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_a_clean_checkout_names_its_commit_and_branch(repo: Path) -> None:
    code = GitProvenance(repo / "src").code_version()  # from a folder inside the repo
    assert code is not None
    assert code.commit == git(repo, "rev-parse", "HEAD") and len(code.commit) == 40
    assert code.branch == "main" and not code.dirty and code.diff_hash is None
    assert Path(code.repo_path).resolve() == repo.resolve()


def test_a_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    code = GitProvenance(repo).code_version()
    assert code is not None and code.branch is None
    assert code.commit == git(repo, "rev-parse", "HEAD")


def test_uncommitted_changes_are_told_apart_by_their_hash(repo: Path) -> None:
    train = repo / "src" / "train.py"
    train.write_text("print('v2')\n")
    first = GitProvenance(repo).code_version()
    same = GitProvenance(repo).code_version()
    train.write_text("print('v3')\n")
    other = GitProvenance(repo).code_version()
    (repo / "notes.txt").write_text("untracked\n")
    untracked = GitProvenance(repo).code_version()
    assert first is not None and same is not None and other is not None
    assert untracked is not None
    assert first.dirty and first.diff_hash is not None
    assert first.diff_hash == same.diff_hash
    assert len({first.diff_hash, other.diff_hash, untracked.diff_hash}) == 3


def test_no_repository_or_no_commit_gives_no_code_version(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    assert GitProvenance(tmp_path / "plain").code_version() is None
    (tmp_path / "empty").mkdir()
    git(tmp_path / "empty", "init", "-q")
    assert GitProvenance(tmp_path / "empty").code_version() is None


def test_package_versions_match_importlib_metadata() -> None:
    expected = []
    for name in TRACKED_PACKAGES:
        try:
            expected.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    assert GitProvenance(Path.cwd()).environment().packages == tuple(sorted(expected))
    assert ("numpy", metadata.version("numpy")) in expected  # the check compared something


def test_installed_versions_read_folder_names(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (
        first / "Scikit_Learn-1.5.2.dist-info",
        first / "old_tool-0.3-py3.11.egg-info",
        first / "devpkg.egg-info",
        first / "not_a_package",
        second / "scikit_learn-0.9.dist-info",
        second / "zope.interface-6.1.dist-info",
    ):
        folder.mkdir(parents=True)
    found = installed_versions([str(first), str(tmp_path / "missing"), str(second)])
    assert found == {
        "scikit-learn": "1.5.2",  # the first on the path wins
        "old-tool": "0.3",
        "devpkg": None,  # no version in the name: asked through importlib.metadata
        "zope-interface": "6.1",
    }
