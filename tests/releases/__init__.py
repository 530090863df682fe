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
import sysconfig
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


def _shared_libraries() -> list[str]:
    """Where this interpreter's installed libraries are."""
    return list(dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib")))


def _share_libraries(venv: Path) -> None:
    """Let the release's venv see this interpreter's installed libraries, behind its own.

    pip then installs only what the release needs and this environment lacks (or has at
    a version the release refuses) into the release's venv, where it comes first on the
    path; the release's own code is always its own (this environment's ``careline`` is an
    editable install, whose import hook a ``.pth`` path does not run). Installing every
    dependency from nothing cost some 20 s of CPU and the downloads on a machine with an
    empty cache (the suite's first upgrade test waited for it).
    """
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", where], check=True, capture_output=True, text=True
    ).stdout.strip()
    Path(found).mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{path}\n" for path in _shared_libraries())
    (Path(found) / "careline-shared-libraries.pth").write_text(lines)


def _usable(done: Path) -> bool:
    """A finished install whose shared libraries (listed after its first line) are still
    there: a recreated environment elsewhere means building the release again."""
    try:
        lines = done.read_text().splitlines()
    except FileNotFoundError:
        return False
    return all(Path(path).is_dir() for path in lines[1:])


def release(tag: str = PREVIOUS) -> Release:
    """The release ``tag`` installed in its own venv (built on first use, then cached)."""
    commit = commit_of(tag)
    root = cache_dir() / f"{tag}-{commit[:12]}"
    done = root / ".installed"
    if _usable(done):
        return Release(tag, commit, root)
    root.parent.mkdir(parents=True, exist_ok=True)
    # Built in place (a venv's scripts name their interpreter by absolute path, so it cannot
    # be moved after), under a lock; a build that died half-way lacks ``.installed`` and is
    # started again from nothing.
    with open(root.parent / f".{tag}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _usable(done):
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
        # No pip of its own (bootstrapping one cost seconds): this environment's installs
        # into it (``--python``).
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True
        )
        _share_libraries(root / "venv")
        pip = [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(root / "venv" / "bin" / "python"),
            "install",
            "--quiet",
        ]
        # Not editable: the release's code lives in the venv, whatever happens to src.
        subprocess.run([*pip, f"{src}[server]"], check=True, capture_output=True)
        done.write_text(f"{tag} {commit}\n" + "".join(f"{p}\n" for p in _shared_libraries()))
    return Release(tag, commit, root)
