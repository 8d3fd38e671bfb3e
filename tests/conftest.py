"""Test collection policy.

The QEMU crash lab (tests/lab) needs the lab built first (`python3 lab/lab.py all`); its tests run
when KTRIAGE_LAB=run is set (as .ci/run will do once the lab is wired into CI, issue 3).
"""

import os

collect_ignore_glob = [] if os.environ.get("KTRIAGE_LAB") == "run" else ["lab/*"]

# ktriage's per-user cache (ktriage.diskcache) goes to a directory of this test session, never ~/.cache:
# tests must neither read entries an earlier build left nor leave one behind.
if "KTRIAGE_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["KTRIAGE_CACHE_DIR"] = _CACHE_DIR = tempfile.mkdtemp(prefix="ktriage-test-cache-")
    atexit.register(shutil.rmtree, _CACHE_DIR, True)
