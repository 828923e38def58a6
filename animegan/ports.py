"""Is the app's port free? Checked before launching, so a busy port is one readable line, not a traceback."""
from __future__ import annotations

import errno
import socket

from .flags import FLAGS

PORT_VARIABLE = FLAGS["port"].env  # the table's entry names the variable; the message names it from there


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on ``host:port`` (a bind there fails with 'address in use').

    SO_REUSEADDR as the web server sets it, so a recently closed connection (TIME_WAIT) does not count as busy;
    any other bind failure (say, a host that is not this machine's) is left for the server to report.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


def busy_port_message(port: int) -> str:
    return f"port {port} is in use; pass --port or set {PORT_VARIABLE}"
