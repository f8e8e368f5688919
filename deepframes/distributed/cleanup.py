"""Remove a rank's folder when the task that made it dies, even by SIGKILL.

A cancelled or failed barrier job has its Python workers killed by Spark, so their ``finally``
blocks never run; a small watcher process, in a session of its own, removes the folder
(its spec, shard and result files) as soon as the process that owns it is gone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# Run with ``python -c``: waits on a pidfd (instant), or polls where pidfds are missing; it also
# ends when the owner removed the folder itself.
_WATCHER = """
import os, select, shutil, sys, time
owner, folder = int(sys.argv[1]), sys.argv[2]
try:
    handle = os.pidfd_open(owner)
    poller = select.poll()
    poller.register(handle, select.POLLIN)
    wait = lambda: bool(poller.poll(500))
except (AttributeError, OSError):
    def wait():
        time.sleep(0.5)
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            return True
        return False
while os.path.isdir(folder) and not wait():
    pass
shutil.rmtree(folder, ignore_errors=True)
"""


class FolderGuard:
    """Owns ``folder`` for this process: removed on :meth:`close`, or by a watcher if we die first.

    Examples
    --------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> with FolderGuard(folder):
    ...     os.path.isdir(folder)
    True
    >>> os.path.exists(folder)
    False
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._watcher = subprocess.Popen(
            [sys.executable, "-S", "-c", _WATCHER, str(os.getpid()), folder],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives a kill of this process's group
        )

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self._watcher.kill()
        self._watcher.wait()

    def __enter__(self) -> FolderGuard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
