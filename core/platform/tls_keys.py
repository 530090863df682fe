"""Handing a certificate and private key held in memory to an ``ssl.SSLContext``.

``SSLContext.load_cert_chain`` reads only files: Python has no call that takes PEM from
memory (cpython issues #60691, #118557, #129216, all open). So the key is offered through
a path that, where the platform allows, never reaches a disk:

* Linux: an anonymous in-memory file (``memfd_create``), read via ``/proc/self/fd``.
* macOS and other POSIX systems: a named pipe (FIFO) in a new private temporary folder
  (mode 0700); a thread writes the key into the pipe as OpenSSL reads it, so the key
  passes through kernel memory only. The certificate (not secret) is a plain file beside
  it.
* Windows (no FIFOs Python can make): a temporary file, mode 0600 where the system has
  modes, in a new private temporary folder, flagged short-lived (Windows then tries to
  keep it in cache); it is overwritten with zeros and deleted as soon as it is loaded.
  **The key may touch the disk briefly**, and overwriting does not reach copies the file
  system or an SSD keeps elsewhere.

Python cannot wipe its own copies of the PEM strings.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
import threading
from pathlib import Path


def load_cert_chain(context: ssl.SSLContext, certificate: str, private_key: str) -> None:
    """Load ``certificate`` (PEM, chain allowed) and its ``private_key`` (PEM) into
    ``context``, by the most private means the platform has (see the module docstring)."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        load_via_memfd(context, certificate, private_key)
    elif hasattr(os, "mkfifo"):
        load_via_fifo(context, certificate, private_key)
    else:
        load_via_temp_file(context, certificate, private_key)


def load_via_memfd(context: ssl.SSLContext, certificate: str, private_key: str) -> None:
    """Linux: both through one anonymous in-memory file, closed right after loading."""
    fd = os.memfd_create("careline-tls", os.MFD_CLOEXEC)
    try:
        _write_all(fd, (certificate + private_key).encode("ascii"))
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def load_via_fifo(context: ssl.SSLContext, certificate: str, private_key: str) -> None:
    """POSIX without memfd: the key through a named pipe fed by a thread."""
    folder = Path(tempfile.mkdtemp(prefix="careline-tls-"))
    cert_path, key_path = folder / "certificate.pem", folder / "key.pem"
    try:
        cert_path.write_text(certificate, encoding="ascii")
        os.mkfifo(key_path, 0o600)
        writer = threading.Thread(
            target=_feed, args=(key_path, private_key.encode("ascii")), daemon=True
        )
        writer.start()
        try:
            context.load_cert_chain(cert_path, key_path)
        finally:
            # If OpenSSL never opened the pipe (it failed on the certificate first), the
            # writer still waits in open(): open the read end here so it can finish.
            release = os.open(key_path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                while writer.is_alive():
                    with contextlib.suppress(BlockingIOError):
                        os.read(release, 1 << 16)  # keep the pipe from filling up
                    writer.join(0.01)
            finally:
                os.close(release)
    finally:
        for path in (cert_path, key_path):
            path.unlink(missing_ok=True)
        folder.rmdir()


def _feed(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY)  # waits for a reader
    except OSError:
        return
    try:
        _write_all(fd, data)
    except OSError:
        pass  # the reader stopped early (OpenSSL failed and says why)
    finally:
        os.close(fd)


def load_via_temp_file(context: ssl.SSLContext, certificate: str, private_key: str) -> None:
    """Anywhere: a short-lived private temporary file, zeroed and deleted after loading."""
    folder = Path(tempfile.mkdtemp(prefix="careline-tls-"))  # mode 0700 where modes exist
    path = folder / "chain.pem"
    data = (certificate + private_key).encode("ascii")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_SHORT_LIVED", 0)  # Windows: keep it in cache if it can
    try:
        fd = os.open(path, flags, 0o600)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        try:
            context.load_cert_chain(path)
        finally:
            fd = os.open(path, os.O_WRONLY | getattr(os, "O_BINARY", 0))
            try:
                _write_all(fd, bytes(len(data)))
                os.fsync(fd)
            finally:
                os.close(fd)
    finally:
        path.unlink(missing_ok=True)
        folder.rmdir()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
