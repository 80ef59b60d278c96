"""sd_notify without a dependency: READY=1, WATCHDOG=1 and STOPPING=1 as datagrams to $NOTIFY_SOCKET.

The protocol is one datagram per message to a Unix socket whose path systemd passes in the environment (a
leading "@" means the abstract namespace). Outside systemd the variable is unset and every call is a no-op.
The libraries that wrap this are either unmaintained or need libsystemd's headers to build; the protocol is
stable and this small.
"""

from __future__ import annotations

import os
import socket


def _address() -> str | None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return None
    return "\0" + path[1:] if path.startswith("@") else path


def notify(message: str) -> bool:
    """Send one sd_notify message; False when not under systemd or the socket refused it."""
    address = _address()
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec (seconds), or None when no watchdog is armed for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000 / 2
