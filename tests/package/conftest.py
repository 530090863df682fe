"""The package tests build, install and remove real Debian packages on this machine (as
root, with dpkg): minutes, not seconds. ``make test`` leaves them out; ``make
package-test`` (CARELINE_PACKAGE_TEST=1) runs them."""

import os

collect_ignore_glob = [] if os.environ.get("CARELINE_PACKAGE_TEST") == "1" else ["test_*.py"]
