"""`digitrec serve --workers N`: N server processes that share one port (Linux).

Each worker binds its own listening socket with SO_REUSEPORT, so the kernel spreads new
connections over the workers. (uvicorn's own `workers=N` shares one socket, and the first
worker to wake up accepts a whole burst of connections: with keep-alive clients one process
does all the work while the others idle.) A worker that dies after it was serving is replaced;
one that dies before it ever served means the service cannot start, and everything stops.
SIGTERM or Ctrl-C: every worker finishes its in-flight requests, then the supervisor exits.
The workers write their metrics to one directory, so that /metrics reports them all.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.synchronize
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.multiprocess import mark_process_dead

from ..errors import DigitrecError
from .metrics import MULTIPROC_ENV

log = logging.getLogger("digitrec.serve")
RESTART_PAUSE_S = 1.0  # between a worker's death and its replacement (no tight crash loop)


def listening_socket(host: str, port: int, share: bool = True) -> socket.socket:
    """A TCP socket bound to host:port; `share`: the other workers can bind it too.

    Created with IPPROTO_TCP: plain asyncio turns Nagle's algorithm off on the connections it
    accepts only when the protocol number says TCP (a bare socket() has 0 there, and small
    answers then wait for the client's delayed ACK).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if share:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve_worker(host: str, port: int, options: dict[str, Any],
                 ready: multiprocessing.synchronize.Event) -> None:
    """One worker process: the app from $DIGITREC_SERVE_CONFIG on its own socket; `ready` is
    set once it accepts connections."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config("digitrec.serve.app:app_from_env", factory=True,
                                           **options))

    def report_ready() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            ready.set()
    threading.Thread(target=report_ready, daemon=True).start()
    server.run(sockets=[listening_socket(host, port)])


def supervise(host: str, port: int, workers: int, options: dict[str, Any]) -> int:
    """Run `workers` worker processes until a signal stops them; the exit status."""
    if not sys.platform.startswith("linux"):
        raise DigitrecError("--workers above 1 needs Linux (SO_REUSEPORT spreads the "
                            "connections there); elsewhere run one worker per port")
    try:  # not shared: fails if anything, another digitrec included, listens there
        with listening_socket(host, port, share=False) as probe:
            port = probe.getsockname()[1]  # port 0: every worker takes the one chosen here
    except OSError as e:
        raise DigitrecError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    with shared_metrics():
        return run_workers(host, port, workers, options)


@contextlib.contextmanager
def shared_metrics() -> Iterator[None]:
    """A fresh $PROMETHEUS_MULTIPROC_DIR for the workers' metrics, removed at the end: /metrics
    then adds up every worker, those that died included (counters never go back)."""
    previous = os.environ.get(MULTIPROC_ENV)
    with tempfile.TemporaryDirectory(prefix="digitrec-metrics-") as directory:
        os.environ[MULTIPROC_ENV] = directory
        try:
            yield
        finally:
            if previous is None:
                del os.environ[MULTIPROC_ENV]
            else:
                os.environ[MULTIPROC_ENV] = previous


def run_workers(host: str, port: int, workers: int, options: dict[str, Any]) -> int:
    """Start the workers on the port, replace those that die, stop them on a signal."""
    context = multiprocessing.get_context("spawn")
    started: dict[multiprocessing.process.BaseProcess, multiprocessing.synchronize.Event] = {}
    stopping, status, announced = False, 0, False

    def start() -> None:
        if stopping:
            return
        ready = context.Event()
        process = context.Process(target=serve_worker, args=(host, port, options, ready))
        process.start()
        started[process] = ready

    def stop(*_: object) -> None:  # the signal handler: the loop below does the stopping
        nonlocal stopping
        stopping = True

    signalled: set[multiprocessing.process.BaseProcess] = set()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for _ in range(workers):
            start()
        while started:
            multiprocessing.connection.wait([p.sentinel for p in started], timeout=0.2)
            if stopping:
                for process in set(started) - signalled:
                    process.terminate()  # SIGTERM: uvicorn's graceful shutdown
                    signalled.add(process)
            if not announced and all(ready.is_set() for ready in started.values()):
                announced = True
                shown = f"[{host}]" if ":" in host else host
                print(f"digitrec serve: {workers} workers ready on http://{shown}:{port}",
                      flush=True)
            for process in [p for p in started if not p.is_alive()]:
                served = started.pop(process).is_set()
                mark_process_dead(process.pid)  # also for a worker that could not say so itself
                if stopping:
                    continue
                if not served:
                    log.error("a worker failed to start (status %s); stopping",
                              process.exitcode)
                    status = 1
                    stop()
                else:
                    log.warning("a worker exited (status %s); starting a new one",
                                process.exitcode)
                    time.sleep(RESTART_PAUSE_S)
                    start()
        return status
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
