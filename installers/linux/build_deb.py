"""Build Careline's Debian packages: the frozen build (PyInstaller) and two .debs.

    .venv/bin/python installers/linux/build_deb.py [--source DIR] [--out DIR] [--reuse]

``careline`` holds the frozen folder (both commands, one set of libraries) under
/usr/lib/careline with /usr/bin links, the desktop entry, icons, AppStream metainfo and a
man page; ``careline-server`` adds the systemd unit, its settings template and the ``careline``
system user, and depends on ``careline`` for the programs (installers/README.md says why).
``--source`` freezes another source tree (an earlier release, checked out) with this
recipe; its version comes from that tree. Packaging files (icons, desktop entry, unit)
always come from this checkout. Made by ``make package``; tested by tests/package/.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "installers" / "pyinstaller" / "careline.spec"
LINUX = ROOT / "installers" / "linux"
APP_ID = "org.careline.Careline"
MAINTAINER = "Careline maintainers <maintainers@careline.example>"
REVISION = "1"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
# Loaded with dlopen, so no ELF file names them: Qt's D-Bus (the Secret Service keyring,
# desktop notifications), Qt's OpenGL and EGL, and the X cursor theme loader.
DLOPENED = ("libdbus-1-3", "libegl1", "libgl1", "libxcursor1")
# Not libraries: the fonts the printed reports use (linked, not carried).
OTHER_DEPENDS = ("fonts-dejavu-core",)
# Debian's copy of the fonts the printed reports embed (fonts-dejavu-core).
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
SERVER_UNIT = ROOT / "installers" / "systemd" / "careline-server.service"
SERVER_ENV = ROOT / "installers" / "systemd" / "careline-server.env"
# Where the server package ships that template (postinst copies it to /etc/careline).
SERVER_ENV_EXAMPLE = Path("/usr/share/careline-server/server.env.example")
# The IT guide, in both packages' /usr/share/doc.
GUIDE = ROOT / "installers" / "README.md"
# Every file's time stamp in the packages (reproducible when SOURCE_DATE_EPOCH is set).
SOURCE_EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))


def source_version(source: Path) -> str:
    """The release of a source tree: ``core.__version__``, or (before 0.2.0) pyproject's."""
    init = (source / "core" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"', init, re.M)
    if found is None:
        pyproject = (source / "pyproject.toml").read_text(encoding="utf-8")
        found = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    if found is None:
        raise SystemExit(f"build_deb: no version in {source}/core/__init__.py or pyproject")
    return found.group(1)


def freeze(source: Path, dist: Path, work: Path) -> Path:
    """Run the PyInstaller recipe on ``source``; returns the frozen folder."""
    env = {**os.environ, "CARELINE_SOURCE": str(source)}
    subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level=WARN",
         "--distpath", str(dist), "--workpath", str(work), str(SPEC)],
        check=True, env=env,
    )  # fmt: skip
    return dist / "careline"


def is_elf(path: Path) -> bool:
    """Whether ``path`` is an ELF executable or library."""
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def system_depends(frozen: Path) -> list[str]:
    """The Debian packages holding the system libraries the frozen files link against
    (each ELF file's NEEDED entries that the bundle does not carry itself), plus the
    dlopen'ed ones. A library this machine lacks stops the build, naming it."""
    elves = [p for p in frozen.rglob("*") if p.is_file() and not p.is_symlink() and is_elf(p)]
    bundled = {p.name for p in frozen.rglob("*.so*")}
    needed: set[str] = set()
    for elf in elves:
        dynamic = subprocess.run(
            ["readelf", "-d", str(elf)], capture_output=True, text=True, check=True
        ).stdout
        needed.update(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic))
    system = sorted(needed - bundled)
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    paths: dict[str, str] = {}
    for soname in system:
        found = re.search(rf"^\s*{re.escape(soname)} \(libc6,x86-64[^)]*\) => (\S+)", cache, re.M)
        if found is None:
            raise SystemExit(
                f"build_deb: the frozen build links {soname}, which this machine lacks: "
                "install its package so its Debian dependency can be named"
            )
        paths[soname] = found.group(1)
    packages = {*DLOPENED, *OTHER_DEPENDS}
    for soname, path in paths.items():
        packages.add(_owner(soname, path))
    packages.discard("libc6")
    return [f"libc6 (>= {_glibc_needed(elves)})", *sorted(packages)]


def _owner(soname: str, path: str) -> str:
    # dpkg records /usr/lib or /lib as each package shipped it; merged /usr makes both exist.
    real = os.path.realpath(path)
    candidates = {
        path,
        real,
        re.sub(r"^/usr/lib/", "/lib/", real),
        re.sub("^/lib/", "/usr/lib/", real),
    }
    for candidate in sorted(candidates):
        result = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if result.returncode == 0:
            return result.stdout.split(":", 1)[0]
    raise SystemExit(f"build_deb: no Debian package owns {path} ({soname})")


def _glibc_needed(elves: list[Path]) -> str:
    newest = (2, 0)
    for elf in elves:
        for match in re.finditer(rb"GLIBC_2\.(\d+)(?:\.\d+)?\x00", elf.read_bytes()):
            newest = max(newest, (2, int(match.group(1))))
    return f"{newest[0]}.{newest[1]}"


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _gzip(source: bytes, target: Path) -> None:
    # -n: no name or time stamp in the header, so the same input makes the same file.
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as f:
        f.write(source)
    target.chmod(0o644)


def stage_doc(root: Path, package: str, version: str) -> None:
    """``package``'s /usr/share/doc folder under ``root``: copyright, changelog and the IT
    guide (installers/README.md) as README.md, which both packages carry because the
    programs' messages and man pages point to it."""
    doc = root / "usr" / "share" / "doc" / package
    _write(doc / "copyright", (LINUX / f"{package}.copyright").read_text(encoding="utf-8"))
    _write(doc / "README.md", GUIDE.read_text("utf-8"))
    changelog = (LINUX / "changelog").read_text(encoding="utf-8")
    if f"({version}-" not in changelog:
        raise SystemExit(f"build_deb: installers/linux/changelog has no entry for {version}")
    _gzip(changelog.encode(), doc / "changelog.Debian.gz")


def _overrides(root: Path, package: str) -> None:
    source = LINUX / f"{package}.lintian-overrides"
    _write(root / "usr" / "share" / "lintian" / "overrides" / package, source.read_text("utf-8"))


def _man(root: Path, name: str) -> None:
    page = (LINUX / "man" / f"{name}.1").read_bytes()
    _gzip(page, root / "usr" / "share" / "man" / "man1" / f"{name}.1.gz")


def _tidy(lib: Path) -> None:
    """Make the frozen folder fit for a system package: no dangling links (to plugins the
    recipe dropped), no search paths into the build machine (the interpreter's own
    RUNPATH, e.g. a pyenv prefix), the report fonts from Debian's fonts-dejavu-core."""
    for path in sorted(lib.rglob("*")):
        if path.is_symlink() and not path.exists():
            path.unlink()
        elif path.is_file() and not path.is_symlink() and is_elf(path):
            runpath = subprocess.run(
                ["patchelf", "--print-rpath", str(path)], capture_output=True, text=True
            ).stdout.strip()
            if runpath and "$ORIGIN" not in runpath:
                subprocess.run(["patchelf", "--remove-rpath", str(path)], check=True)
            _strip(path)
    for font in (lib / "_internal" / "core" / "reports" / "fonts").glob("*.ttf"):
        system_font = DEJAVU / font.name
        if system_font.is_file():
            font.unlink()
            # Relative, as Debian policy wants links within /usr.
            installed = Path("/usr/lib/careline") / font.parent.relative_to(lib)
            font.symlink_to(os.path.relpath(system_font, installed))


def _strip(path: Path) -> None:
    """Strip symbols the wheels left in, unless stripping would break the file: binutils'
    strip misplaces the segments of some libraries auditwheel rewrote (numpy's OpenBLAS
    then fails to load: "ELF load command address/offset not page-aligned"). Those keep
    their symbols (lintian override, with this reason)."""
    sections = subprocess.run(["readelf", "-SW", str(path)], capture_output=True, text=True)
    if ".symtab" not in sections.stdout and ".debug_" not in sections.stdout:
        return
    stripped = path.with_name(path.name + ".stripped")
    subprocess.run(["strip", "--strip-unneeded", "-o", str(stripped), str(path)], check=True)
    if _segments_aligned(stripped):
        stripped.replace(path)
    else:
        stripped.unlink()


def _segments_aligned(path: Path) -> bool:
    # The loader needs each LOAD segment's file offset and address equal modulo its alignment.
    headers = subprocess.run(["readelf", "-lW", str(path)], capture_output=True, text=True)
    for line in headers.stdout.splitlines():
        fields = line.split()
        if fields[:1] == ["LOAD"]:
            offset, vaddr, align = int(fields[1], 16), int(fields[2], 16), int(fields[-1], 16)
            if align > 1 and offset % align != vaddr % align:
                return False
    return headers.returncode == 0


def stage_desktop(root: Path, frozen: Path, version: str) -> None:
    """Lay out the ``careline`` package's files under ``root``."""
    lib = root / "usr" / "lib" / "careline"
    shutil.copytree(frozen, lib, symlinks=True)
    _tidy(lib)
    bin_dir = root / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("careline", "careline-server"):
        (bin_dir / name).symlink_to(f"../lib/careline/{name}")
        _man(root, name)
    share = root / "usr" / "share"
    linux = ROOT / "resources" / "linux"
    _write(share / "applications" / f"{APP_ID}.desktop",
           (linux / f"{APP_ID}.desktop").read_text("utf-8"))  # fmt: skip
    _write(share / "metainfo" / f"{APP_ID}.metainfo.xml",
           (linux / f"{APP_ID}.metainfo.xml").read_text("utf-8"))  # fmt: skip
    icons = ROOT / "resources" / "icons"
    hicolor = share / "icons" / "hicolor"
    for size in ICON_SIZES:
        target = hicolor / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(icons / f"careline-{size}.png", target)
    (hicolor / "scalable" / "apps").mkdir(parents=True)
    shutil.copyfile(icons / "careline.svg", hicolor / "scalable" / "apps" / f"{APP_ID}.svg")
    stage_doc(root, "careline", version)
    _overrides(root, "careline")


def stage_server(root: Path, version: str) -> None:
    """Lay out the ``careline-server`` package's files and maintainer scripts."""
    if SERVER_UNIT.is_file():
        unit = root / "lib" / "systemd" / "system" / "careline-server.service"
        _write(unit, SERVER_UNIT.read_text("utf-8"))
    if SERVER_ENV.is_file():
        # The template only: postinst makes /etc/careline/server.env from it when there is
        # none and never touches it after. Not a conffile: IT always edits it, so each
        # release that changed the template would stop dpkg at its conffile question (fatal
        # with no terminal, as under Ansible or ssh).
        _write(root / SERVER_ENV_EXAMPLE.relative_to("/"), SERVER_ENV.read_text("utf-8"))
    stage_doc(root, "careline-server", version)
    _overrides(root, "careline-server")
    for script in ("postinst", "prerm", "postrm"):
        _write(
            root / "DEBIAN" / script,
            (LINUX / f"careline-server.{script}").read_text("utf-8"),
            0o755,
        )


def _normalise(root: Path, executables: set[str]) -> None:
    # Directories 0755, the two programs 0755, everything else (libraries too: lintian
    # wants shared objects not executable) 0644.
    for path in root.rglob("*"):
        if path.is_symlink() or "DEBIAN" in path.relative_to(root).parts[:1]:
            continue
        if path.is_dir():
            path.chmod(0o755)
        elif (
            path.relative_to(root).as_posix() not in executables
            and path.stat().st_mode & 0o777 != 0o600
        ):
            path.chmod(0o644)
    for name in executables:
        (root / name).chmod(0o755)
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            os.utime(path, (SOURCE_EPOCH, SOURCE_EPOCH))


def _control(root: Path, fields: dict[str, str], description: str) -> None:
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    count = sum(1 for _ in root.rglob("*"))
    fields = {**fields, "Installed-Size": str((size + 1023) // 1024 + count)}
    text = "".join(f"{key}: {value}\n" for key, value in fields.items()) + description
    _write(root / "DEBIAN" / "control", text)
    sums = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not path.is_symlink() and not rel.startswith("DEBIAN/"):
            sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {rel}\n")  # noqa: S324 -- dpkg's format
    _write(root / "DEBIAN" / "md5sums", "".join(sums))


def _dpkg_deb(root: Path, out: Path) -> Path:
    control = (root / "DEBIAN" / "control").read_text("utf-8")
    fields = dict(re.findall(r"^(Package|Version|Architecture): (\S+)$", control, re.M))
    deb = out / f"{fields['Package']}_{fields['Version']}_{fields['Architecture']}.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", "-Zxz", "--threads-max=2",
         str(root), str(deb)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return deb


def build_debs(frozen: Path, version: str, out: Path) -> list[Path]:
    """Both packages of ``version`` from the frozen folder, written to ``out``."""
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    full = f"{version}-{REVISION}"
    common = {"Version": full, "Architecture": arch, "Maintainer": MAINTAINER,
              "Section": "misc", "Priority": "optional"}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    debs = []
    with tempfile.TemporaryDirectory(prefix="careline-deb-") as tmp:
        desktop = Path(tmp) / "careline"
        stage_desktop(desktop, frozen, version)
        _normalise(desktop, {"usr/lib/careline/careline", "usr/lib/careline/careline-server"})
        _control(
            desktop,
            {"Package": "careline", **common, "Depends": ", ".join(system_depends(frozen))},
            (LINUX / "careline.description").read_text("utf-8"),
        )
        debs.append(_dpkg_deb(desktop, out))
        server = Path(tmp) / "careline-server"
        stage_server(server, version)
        _normalise(server, set())
        _control(
            server,
            {"Package": "careline-server", "Source": "careline", **common,
             "Depends": f"careline (= {full}), adduser, init-system-helpers (>= 1.50)"},
            (LINUX / "careline-server.description").read_text("utf-8"),
        )  # fmt: skip
        debs.append(_dpkg_deb(server, out))
    return debs


def main(argv: list[str] | None = None) -> int:
    """Freeze (unless --reuse finds a frozen folder) and build both packages."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="source tree to freeze")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the .debs go")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller")
    parser.add_argument("--reuse", action="store_true", help="package OUT/careline as it is")
    args = parser.parse_args(argv)
    source = args.source.resolve()
    version = source_version(source)
    frozen = args.out / "careline"
    if not (args.reuse and (frozen / "careline").is_file()):
        frozen = freeze(source, args.out, args.work)
    for deb in build_debs(frozen, version, args.out):
        print(deb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
