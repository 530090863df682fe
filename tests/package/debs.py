"""The Debian packages under test: this checkout's (``make package`` output in dist/,
rebuilt when older than the sources) and an earlier release's, frozen with this
checkout's recipe and cached per tag and commit (``~/.cache/careline/packages``)."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.releases import REPO, commit_of

BUILDER = REPO / "installers" / "linux" / "build_deb.py"
DIST = REPO / "dist"
# What goes into a package: a change in any of these makes dist/'s packages stale.
SOURCES = ("core", "app", "resources", "installers", "pyproject.toml")
# The recipe: an earlier release's cached packages are rebuilt when it changes.
RECIPE = (
    REPO / "installers" / "pyinstaller",
    REPO / "installers" / "linux",
    REPO / "resources" / "linux",
)


@dataclass(frozen=True)
class Debs:
    """One release's two packages."""

    version: str
    desktop: Path
    server: Path


def _debs_in(folder: Path, version: str) -> Debs | None:
    desktop = sorted(folder.glob(f"careline_{version}-*_*.deb"))
    server = sorted(folder.glob(f"careline-server_{version}-*_*.deb"))
    return Debs(version, desktop[-1], server[-1]) if desktop and server else None


def _newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        top = REPO / name
        paths = [top] if top.is_file() else top.rglob("*")
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts:
                newest = max(newest, path.stat().st_mtime)
    return newest


def current_debs() -> Debs:
    """This checkout's packages: dist/'s when newer than every source, else built now."""
    from core import __version__

    found = _debs_in(DIST, __version__)
    if found is None or min(found.desktop.stat().st_mtime, found.server.stat().st_mtime) < (
        _newest_source()
    ):
        subprocess.run([sys.executable, str(BUILDER)], check=True, cwd=REPO)
        found = _debs_in(DIST, __version__)
    assert found is not None, f"{BUILDER.name} made no careline {__version__} packages"
    return found


def recipe_digest() -> str:
    """A short hash of the packaging recipe's files."""
    digest = hashlib.sha256()
    for top in RECIPE:
        for path in sorted(top.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(REPO).as_posix().encode() + b"\0")
                digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def cache_dir() -> Path:
    """Where earlier releases' packages are kept between runs."""
    return Path.home() / ".cache" / "careline" / "packages"


def release_debs(tag: str, version: str) -> Debs:
    """Release ``tag`` (source version ``version``) frozen and packaged with this checkout's
    recipe; built once per tag, commit and recipe, then taken from the cache."""
    commit = commit_of(tag)
    folder = cache_dir() / f"{tag}-{commit[:12]}-{recipe_digest()}"
    found = _debs_in(folder, version)
    if found is not None:
        return found
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{tag}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _debs_in(folder, version)
        if found is not None:
            return found
        with tempfile.TemporaryDirectory(prefix=f"careline-{tag}-") as tmp:
            src, out = Path(tmp) / "src", Path(tmp) / "out"
            src.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", "--format=tar", commit],
                check=True, capture_output=True,
            ).stdout  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
            subprocess.run(
                [sys.executable, str(BUILDER), "--source", str(src), "--out", str(out),
                 "--work", str(Path(tmp) / "work")],
                check=True, cwd=REPO,
            )  # fmt: skip
            # Only the .debs are kept (the frozen folder is in them); moved in last, so an
            # interrupted build leaves nothing that looks finished.
            folder.mkdir(parents=True, exist_ok=True)
            for deb in out.glob("*.deb"):
                shutil.move(deb, folder / deb.name)
        # Packages of the same release made by an older recipe are of no further use.
        for stale in cache_dir().glob(f"{tag}-*"):
            if stale != folder:
                shutil.rmtree(stale, ignore_errors=True)
    found = _debs_in(folder, version)
    assert found is not None, f"no careline {version} packages were built from {tag}"
    return found
