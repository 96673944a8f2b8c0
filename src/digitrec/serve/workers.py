"""`digitrec serve --workers N`: N server processes that share one port.

Each worker binds its own listening socket with SO_REUSEPORT, so the kernel spreads new
connections evenly over the workers. (uvicorn's own `workers=N` shares one socket, and the
first worker to wake up accepts a whole burst of connections: with keep-alive clients one
process did all the work while the others idled.) A worker that dies is replaced; one that
dies within its first seconds means the service cannot start, and everything stops.
SIGTERM or Ctrl-C: every worker finishes its in-flight requests, then the supervisor exits.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import signal
import socket
import time
from typing import Any

from ..errors import DigitrecError

log = logging.getLogger("digitrec.serve")
STARTUP_S = 10.0  # a worker that exits sooner than this after its start failed to start


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port that the other workers can bind too (SO_REUSEPORT).

    Created with IPPROTO_TCP so asyncio turns Nagle's algorithm off on every connection it
    accepts (it checks the protocol number; a plain socket() has 0 there and small answers
    then wait for the client's delayed ACK).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve_worker(host: str, port: int, options: dict[str, Any]) -> None:
    """One worker process: the app from $DIGITREC_SERVE_CONFIG on its own socket."""
    import uvicorn

    config = uvicorn.Config("digitrec.serve.app:app_from_env", factory=True, **options)
    uvicorn.Server(config).run(sockets=[listening_socket(host, port)])


def supervise(host: str, port: int, workers: int, options: dict[str, Any]) -> int:
    """Run `workers` worker processes until a signal stops them; the exit status."""
    try:
        with listening_socket(host, port) as probe:
            port = probe.getsockname()[1]  # port 0: every worker takes the one chosen here
    except OSError as e:
        raise DigitrecError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    context = multiprocessing.get_context("spawn")
    started: dict[multiprocessing.process.BaseProcess, float] = {}
    stopping, status = False, 0

    def start() -> None:
        process = context.Process(target=serve_worker, args=(host, port, options))
        process.start()
        started[process] = time.monotonic()

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for process in started:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn's graceful shutdown

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for _ in range(workers):
            start()
        while started:
            multiprocessing.connection.wait([p.sentinel for p in started])
            for process in [p for p in started if not p.is_alive()]:
                lived = time.monotonic() - started.pop(process)
                if stopping:
                    continue
                if lived < STARTUP_S:
                    log.error("a worker exited during startup (status %s); stopping",
                              process.exitcode)
                    status = 1
                    stop()
                else:
                    log.warning("a worker exited (status %s); starting a new one",
                                process.exitcode)
                    start()
        return status
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
