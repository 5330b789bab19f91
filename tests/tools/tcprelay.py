"""A loopback TCP relay that a test owns and can cut.

The portal reaches PostgreSQL and Redis through one of these, so a test can
make the store "go away" (listener closed, every open connection reset) and
come back on the same port, without touching the machine's own services.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading

from tests.support.portal import free_port


class TcpRelay:
    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        self.port = free_port(host)
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._accepting = threading.Event()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> TcpRelay:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        # A short timeout lets the accept loop notice a cut promptly; closing
        # a socket does not reliably wake a thread blocked in accept().
        listener.settimeout(0.1)
        self._listener = listener
        self._accepting.set()
        threading.Thread(
            target=self._accept_loop, args=(listener,), daemon=True
        ).start()
        return self

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        self._accepting.clear()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            doomed = list(self._open)
            self._open.clear()
        for sock in doomed:
            _reset(sock)

    def restore(self) -> None:
        if self._listener is None:
            self.start()

    def stop(self) -> None:
        self.cut()

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._accepting.is_set() and self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=3)
            except OSError:
                _reset(client)
                continue
            client.settimeout(None)
            server.settimeout(None)
            with self._lock:
                if not self._accepting.is_set():
                    _reset(client)
                    _reset(server)
                    return
                self._open.update((client, server))
            threading.Thread(
                target=self._pump, args=(client, server), daemon=True
            ).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peer = {client: server, server: client}
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ)
            sel.register(server, selectors.EVENT_READ)
            try:
                while True:
                    for key, _ in sel.select(timeout=0.5):
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if not data:
                            raise ConnectionError("closed")
                        peer[key.fileobj].sendall(data)  # type: ignore[index]
                    with self._lock:
                        if client not in self._open:
                            return
            except (OSError, ValueError):
                pass
            finally:
                with self._lock:
                    self._open.discard(client)
                    self._open.discard(server)
                _reset(client)
                _reset(server)


def _reset(sock: socket.socket) -> None:
    """Close with RST, as a crashed server or a dropped link would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
