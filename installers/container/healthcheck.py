"""Container health check: GET /health of the server in this container, over TLS.

Exit 0 when it answers ``{"status": "ok"}``, else 1 with the reason on stderr. Standard
library only (the image has no curl). CARELINE_HEALTH_URL (default
https://127.0.0.1:8443/health) and CARELINE_HEALTH_CA (default: the certificate the server
generated in its data folder) change what is checked.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.request


def main() -> int:
    """Check once; the exit status is the verdict."""
    data = os.environ.get("CARELINE_DATA_DIR", "/var/lib/careline-server")
    url = os.environ.get("CARELINE_HEALTH_URL", "https://127.0.0.1:8443/health")
    ca = os.environ.get("CARELINE_HEALTH_CA", os.path.join(data, "tls", "server.pem"))
    if not url.startswith("https://"):
        sys.stderr.write(f"careline-healthcheck: CARELINE_HEALTH_URL={url!r} is not https\n")
        return 1
    try:
        trust = ssl.create_default_context(cafile=ca)
        with urllib.request.urlopen(url, context=trust, timeout=4) as reply:  # noqa: S310
            body = json.load(reply)
    except (OSError, ValueError, ssl.SSLError) as exc:
        sys.stderr.write(f"careline-healthcheck: {url}: {exc}\n")
        return 1
    if body != {"status": "ok"}:
        sys.stderr.write(f"careline-healthcheck: {url} answered {body!r}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
