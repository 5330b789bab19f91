"""An upstream that speaks raw bytes: for answers no real server would send.

It parses request heads only, never bodies (as careless servers do), records
every head it parses, and answers with the bytes configured for the longest
matching path prefix, or with ``answer`` by default. An answer may also be a
function that takes the socket, to drip bytes or hang.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

Answer = bytes | Callable[[socket.socket], None]


class RawUpstream:
    def __init__(self) -> None:
        self.answer: Answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        self.answers: dict[str, Answer] = {}
        self.heads: list[str] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _answer_for(self, path: str) -> Answer:
        for prefix, answer in sorted(self.answers.items(), key=lambda kv: -len(kv[0])):
            if path.startswith(prefix):
                return answer
        return self.answer

    def _handle(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            try:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buffer += data
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    text = head.decode("latin-1")
                    self.heads.append(text)
                    path = text.split(" ", 2)[1] if " " in text else ""
                    answer = self._answer_for(path)
                    if callable(answer):
                        answer(conn)
                        return
                    conn.sendall(answer)
                    framed = b"Content-Length" in answer or b"chunked" in answer
                    closing = b"connection: close" in (head + answer).lower()
                    if closing or not framed:
                        return
            except OSError:
                return
