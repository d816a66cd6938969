"""Child process for the kill-and-rerun tests: materialize one asset and SIGKILL itself.

The kill lands at the ``KILL_AT_PUBLISH``-th time a lake file is about to be renamed into
place: the temporary file is fully written, the rename has not happened, and for assets that
write several files the earlier ones are already new. Nothing runs after a SIGKILL (no
``finally``, no atexit), exactly as when the kernel's OOM killer or a pre-empted node stops
a pod.
"""

from __future__ import annotations

import os
import signal
import sys

import dagster as dg

import lakehouse.storage as storage
from orchestration.cli import register
from tests.conftest import materialize


def main() -> None:
    config, asset, partition, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    calls = 0
    real_publish = storage.publish

    def publish_then_die(tmp, target):
        nonlocal calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real_publish(tmp, target)

    storage.publish = publish_then_die
    instance = dg.DagsterInstance.ephemeral()
    register(config, instance)
    materialize(config, asset.split(","), None if partition == "-" else partition, instance)
    sys.exit(3)  # reached only when the kill point was never hit


if __name__ == "__main__":
    main()
