"""Earlier tagged releases of Careline, installed into their own throwaway venvs.

Upgrade tests and the fixture generator run the real previous release beside the current
code: ``release("v0.1.0")`` checks the tag out of this repository (``git archive``, so the
working tree is untouched), installs it with its server extra into a venv of its own and
returns where its interpreter and console scripts are. Installs are cached per tag and
commit (``CARELINE_RELEASE_CACHE``, default ``~/.cache/careline/releases``) and a build
interrupted half-way is started again, so a second run costs nothing extra.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Tagged releases, oldest first. The newest is "the previous release" of the code here.
# Each with the commit it names, so a clone that did not fetch tags (a CI checkout with
# --no-tags, a mirror) still finds the release; where the tag is present it must agree.
COMMITS = {"v0.1.0": "21764c8dcdc3513ac0b7d02842bf3badd8cced48"}
TAGS = tuple(COMMITS)
PREVIOUS = TAGS[-1]


@dataclass(frozen=True)
class Release:
    """An installed earlier release."""

    tag: str
    commit: str
    root: Path

    @property
    def python(self) -> Path:
        """The release venv's interpreter."""
        return self.root / "venv" / "bin" / "python"

    @property
    def careline(self) -> Path:
        """The release's ``careline`` console script."""
        return self.root / "venv" / "bin" / "careline"

    @property
    def careline_server(self) -> Path:
        """The release's ``careline-server`` console script."""
        return self.root / "venv" / "bin" / "careline-server"

    @property
    def source(self) -> Path:
        """The release's source tree (as checked out from the tag)."""
        return self.root / "src"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def commit_of(tag: str) -> str:
    """The commit of a release: its tag's, or the one recorded in ``COMMITS`` when this
    clone lacks the tag. A tag that names another commit than recorded is an error."""
    recorded = COMMITS.get(tag)
    try:
        tagged = _git("rev-list", "-n", "1", f"refs/tags/{tag}")
    except subprocess.CalledProcessError:
        if recorded is None:
            raise LookupError(f"release tag {tag} is not in this clone") from None
        return recorded
    if recorded is not None and tagged != recorded:
        raise LookupError(f"tag {tag} names {tagged}, but {recorded} is recorded as {tag}")
    return tagged


def cache_dir() -> Path:
    """Where installed releases are kept between runs."""
    configured = os.environ.get("CARELINE_RELEASE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "careline" / "releases"


def release(tag: str = PREVIOUS) -> Release:
    """The release ``tag`` installed in its own venv (built on first use, then cached)."""
    commit = commit_of(tag)
    root = cache_dir() / f"{tag}-{commit[:12]}"
    done = root / ".installed"
    if done.exists():
        return Release(tag, commit, root)
    root.parent.mkdir(parents=True, exist_ok=True)
    # Built in place (a venv's scripts name their interpreter by absolute path, so it cannot
    # be moved after), under a lock; a build that died half-way lacks ``.installed`` and is
    # started again from nothing.
    with open(root.parent / f".{tag}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return Release(tag, commit, root)
        shutil.rmtree(root, ignore_errors=True)
        src = root / "src"
        src.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", commit],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
        pip = [str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        # Not editable: the release's code lives in the venv, whatever happens to src.
        subprocess.run([*pip, f"{src}[server]"], check=True, capture_output=True)
        done.write_text(f"{tag} {commit}\n")
    return Release(tag, commit, root)
