"""How sync messages travel. A transport carries one request and returns one reply."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from core.errors import CarelineError
from core.sync.responder import Responder
from core.sync.snapshot_image import ImageError, ImageKeeper


class TransportError(CarelineError):
    """The other side could not be reached or the exchange broke off."""


class Transport(Protocol):
    """Request/response carrier (HTTP to the server, mutual TLS to a LAN peer, in-process)."""

    def request(self, message: bytes) -> bytes:
        """Send one request, return the reply; raise TransportError when it cannot."""
        ...


@runtime_checkable
class ImageTransport(Protocol):
    """A transport that can also fetch a snapshot image the other side offered
    (core.sync.snapshot_image): the clinic server's."""

    def request(self, message: bytes) -> bytes:
        """Send one request, return the reply; raise TransportError when it cannot."""
        ...

    def fetch_image(
        self,
        image_id: str,
        dest: Path,
        size: int,
        on_bytes: Callable[[int], object] | None = None,
    ) -> None:
        """Write the offered image ``image_id`` of ``size`` bytes to the new file ``dest``,
        telling ``on_bytes`` how many have arrived as they do; TransportError when it
        cannot (not offered any more, cut short, too long)."""
        ...


class LocalTransport:
    """Direct call into another replica's responder in the same process; with ``images``
    (the responder's keeper), its snapshot images are fetched from the keeper's files."""

    def __init__(self, responder: Responder, images: ImageKeeper | None = None) -> None:
        self.responder = responder
        self.images = images

    def fetch_image(
        self,
        image_id: str,
        dest: Path,
        size: int,
        on_bytes: Callable[[int], object] | None = None,
    ) -> None:
        """Copy the keeper's image file (as the server's endpoint streams it)."""
        if self.images is None:
            raise ImageError("the other side offers no snapshot images")
        try:
            with self.images.open(image_id) as src, dest.open("xb") as out:
                shutil.copyfileobj(src, out)
                if on_bytes is not None:
                    on_bytes(out.tell())
        except KeyError:
            raise ImageError(f"snapshot image {image_id} is no longer offered") from None

    def request(self, message: bytes) -> bytes:
        """Hand the bytes over and back; only bytes cross, as on a real wire."""
        return self.responder.handle(bytes(message))
