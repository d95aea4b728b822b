"""A worker's identity: its default transactional id, unique per live process, stable across restarts.

Two live workers with one ``transactional.id`` fence each other, so the
default id must never be shared by accident, and a worker restarted in the
same place (a pod, a compose service) must get its old id back, so that its
new producer fences the dead one's open transaction at once.

* With the metrics endpoint on, the id is ``driftline-<group_id>-<hostname>-<port>``
  (``-<metrics_host>-<port>`` when bound to one address, not all): the
  worker binds its port before it touches Kafka, and no other live process
  on the host can hold that port.
* With ``metrics_port = 0`` it is ``driftline-<group_id>-<hostname>-slot<N>``:
  ``N`` is the lowest free slot of the group on this host, held with an
  exclusive ``flock`` on ``<tmp>/driftline-ids/<group digest>.slot<N>.lock``
  for the life of the process (the kernel releases it when the process dies,
  however it dies).  The first worker on a host is slot 0 after every restart.

Hostnames must differ between hosts (they do for Kubernetes pods and compose
containers).  An explicit ``transactional_id`` is used as given.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
import tempfile
from pathlib import Path

__all__ = ["SlotLock", "default_transactional_id", "WILDCARD_HOSTS"]

log = logging.getLogger("driftline.worker")

#: Addresses that bind every interface (the id then needs only the port).
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")
#: Slots tried before giving up (more workers of one group on one host than this is not a deployment).
MAX_SLOTS = 1024


def default_transactional_id(group_id: str, *, port: int | None = None, host: str = "0.0.0.0",
                             slot: int | None = None, hostname: str | None = None) -> str:
    """The default id of a worker whose metrics endpoint holds ``port`` on ``host``, or that holds ``slot``.

    >>> default_transactional_id("g", port=9188, hostname="pod-1")
    'driftline-g-pod-1-9188'
    >>> default_transactional_id("g", port=9188, host="10.0.0.5", hostname="pod-1")
    'driftline-g-pod-1-10.0.0.5-9188'
    >>> default_transactional_id("g", slot=0, hostname="pod-1")
    'driftline-g-pod-1-slot0'
    """
    name = hostname if hostname is not None else socket.gethostname()
    if port:
        where = str(port) if host in WILDCARD_HOSTS else f"{host}-{port}"
        return f"driftline-{group_id}-{name}-{where}"
    return f"driftline-{group_id}-{name}-slot{slot if slot is not None else 0}"


def lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / "driftline-ids"


class SlotLock:
    """Holds the lowest free slot of ``group_id`` on this host until :meth:`close` (or the process ends)."""

    def __init__(self, group_id: str, directory: Path | None = None) -> None:
        self.directory = directory or lock_dir()
        self.slot: int | None = None
        self._fd: int | None = None
        digest = hashlib.sha256(group_id.encode("utf-8", "backslashreplace")).hexdigest()[:16]
        try:
            self.directory.mkdir(mode=0o1777, exist_ok=True)
            try:
                os.chmod(self.directory, 0o1777)  # shared by the users of the host, like /tmp
            except OSError:
                pass  # made by another user: it set the mode
        except OSError as exc:
            log.warning("cannot create the transactional-id lock directory; using slot 0 unlocked",
                        extra={"ctx": {"directory": str(self.directory), "error": exc.strerror}})
            self.slot = 0
            return
        for slot in range(MAX_SLOTS):
            path = self.directory / f"{digest}.slot{slot}.lock"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            except PermissionError:
                try:
                    fd = os.open(path, os.O_RDONLY)  # another user's lock file: flock works on a read-only fd
                except OSError:
                    continue
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.slot, self._fd = slot, fd
            return
        raise OSError(f"no free transactional-id slot in {self.directory} (all {MAX_SLOTS} are held)")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None

    def __enter__(self) -> "SlotLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
