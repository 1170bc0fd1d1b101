"""Reading sd_notify messages from the test's own unix datagram socket."""

from __future__ import annotations

import socket
import time


def wait_for_notify(sock: socket.socket, text: str, seconds: float) -> bool:
    """True as soon as a notify message containing `text` arrives."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if text in sock.recv(4096).decode():
                return True
        except TimeoutError:
            return False
    return False
