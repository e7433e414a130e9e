"""PostgreSQL peers: `pg_notify` in every key write's transaction, one LISTEN per process.

A notification is delivered only when its transaction commits, so a peer never evicts for a
write that rolled back. Notifications sent while a listener is disconnected are lost, so the
listener fails closed: on losing its connection it suspends the cache (flushed; every read
goes to the database) and resumes it, flushed again, only after it has reconnected and its
LISTEN is in place. A heartbeat query catches a connection that died silently.

The listener runs in its own thread on a dedicated libpq connection driven without blocking
(`psycopg.pq`): every wait is a `select` with a deadline, so a black-holed connection is
noticed within the heartbeat timeout rather than never, and nothing runs on the event loop.
The connection must reach PostgreSQL directly (or through a session-mode pooler): LISTEN does
not work through pgbouncer in transaction mode.

The read path also looks at the listener's socket before trusting the cache: a notification
that has arrived but is not applied yet (the thread may be waiting for the GIL) sends the
request to the database instead of serving the record it is about to evict.

A writer acknowledges only once every peer's listener has applied the write: each listener
that evicts for a peer's notification answers on ACK_CHANNEL, and the writer, which counted the
peers' listening connections inside the write's transaction, waits for that many answers and
its own echo (bounded by ECHO_WAIT_SECONDS; a peer that has not answered by then is logged).
PostgreSQL signals every listening backend at the same commit, but on a loaded machine a peer's
backend or listener thread can lag behind the writer's: without the answers, the client's next
request could reach that peer before it had evicted.
"""

import contextlib
import itertools
import logging
import os
import secrets
import select
import threading
import time
from collections.abc import Collection
from typing import Any

import psycopg
from psycopg import pq
from psycopg.pq.abc import PGconn
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from keyscope.app.keys.cache import RecordCache

log = logging.getLogger("keyscope.keys")

CHANNEL = "keyscope_keys"
ACK_CHANNEL = "keyscope_key_acks"  # "<writer origin>:<sequence>:<acking origin>"
# Payload "<origin>:<sequence>:<user id>": evict that user. The origin names the writing
# process, which does not evict on its own notifications (it evicted the user itself right
# after the commit) but uses them to know the write has been delivered.
ORIGIN_LENGTH = 16
ECHO_WAIT_SECONDS = 1.0
APPLICATION_NAME = "keyscope-listener"

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
# The peers that will answer a write: every other keyscope listener on this database.
_PEER_LISTENERS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name LIKE :name AND pid <> coalesce(:own, 0)"
)
_HEX = frozenset("0123456789abcdef")


class ListenerLost(Exception):
    """The listening connection failed or stopped answering."""


class PostgresNotify:
    """One LISTEN connection per process; evicts the users its peers' writes name."""

    def __init__(
        self,
        database_url: str,
        cache: RecordCache[Any],
        *,
        heartbeat_seconds: float,
        timeout_seconds: float,
        retry_seconds: float,
    ) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._cache = cache
        self._origin = secrets.token_hex(ORIGIN_LENGTH // 2)
        self._sequence = itertools.count(1)
        self._echoes: dict[int, _Delivery] = {}
        self._echo_lock = threading.Lock()
        self._acks_due: list[str] = []  # answers to peers' writes, sent after each drain
        self._writes = threading.local()  # the sequence numbers of the calling thread's write
        self._heartbeat = heartbeat_seconds
        self._timeout = timeout_seconds
        self._retry = retry_seconds
        self._apply_lock = threading.Lock()
        self._poller: Any = None  # select.poll on the live connection's socket, else None
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None
        # A pipe the listening thread selects on beside its connection: `stop()` writes to it,
        # so the thread sees the stop at once instead of at its next timeout.
        self._wake: tuple[int, int] | None = None
        self._state = "connecting"
        self.backend_pid: int | None = None  # the listener's PostgreSQL backend (tests, ops)
        cache.suspend()  # nothing is cached before the first LISTEN is in place

    @property
    def state(self) -> str:
        return self._state

    def start(self, wait_seconds: float) -> None:
        if self._thread is not None:
            return
        self._wake = os.pipe()
        self._thread = threading.Thread(target=self._run, name="keyscope-listener", daemon=True)
        self._thread.start()
        if not self._listening.wait(wait_seconds):
            log.warning("key cache listener not connected yet: reading through to the database")

    def stop(self) -> None:
        self._stopping.set()
        if self._wake is not None:
            os.write(self._wake[1], b"\0")
        if self._thread is not None:
            self._thread.join(timeout=self._heartbeat + self._timeout + 1)
            if self._thread.is_alive():
                return  # still in a deadline-bounded wait: its pipe stays open under it
            self._thread = None
        if self._wake is not None:
            for fd in self._wake:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._wake = None

    def cache_trusted(self) -> bool:
        if not self._apply_lock.acquire(blocking=False):
            return False  # notifications are being applied right now
        try:
            poller = self._poller
            return poller is None or not poller.poll(0)
        finally:
            self._apply_lock.release()

    def catch_up(self) -> None:
        return  # notifications are applied as they arrive

    def record_write(self, conn: Connection, user_ids: Collection[str]) -> None:
        pending: list[int] = []
        peers = 0
        if self._state == "listening" and user_ids:
            peers = int(
                conn.execute(
                    _PEER_LISTENERS, {"name": f"{APPLICATION_NAME}-%", "own": self.backend_pid}
                ).scalar_one()
            )
        for user_id in user_ids:
            sequence = next(self._sequence)
            if self._state == "listening":
                with self._echo_lock:
                    self._echoes[sequence] = _Delivery(peers)
                pending.append(sequence)
            payload = f"{self._origin}:{sequence}:{user_id}"
            conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})
        self._writes.pending = pending

    def settle(self, committed: bool) -> None:
        pending: list[int] = getattr(self._writes, "pending", [])
        self._writes.pending = []
        deadline = time.monotonic() + ECHO_WAIT_SECONDS
        for sequence in pending:
            with self._echo_lock:
                delivery = self._echoes.get(sequence)
            remaining = max(0.0, deadline - time.monotonic())
            if committed and delivery is not None and not delivery.done.wait(remaining):
                log.warning(
                    "key write acknowledged before %d of %d peer listener(s) answered "
                    "within %.1f s: a lagging peer may serve the old record until it does",
                    delivery.missing(),
                    delivery.peers,
                    ECHO_WAIT_SECONDS,
                )
            with self._echo_lock:
                self._echoes.pop(sequence, None)

    # The listening thread.

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            # Whatever ends a connection (lost, unanswered, or a bug), the answer is the same:
            # read through, reconnect; a dead thread would leave the cache suspended for good.
            except Exception as exc:
                log.warning(
                    "key cache listener lost (%s): reading through to the database until it "
                    "reconnects",
                    type(exc).__name__,
                )
            finally:
                self._lost()
            self._stopping.wait(self._retry)

    def _lost(self) -> None:
        with self._apply_lock:
            self._poller = None
        self._listening.clear()
        self.backend_pid = None
        self._state = "stopped" if self._stopping.is_set() else "reconnecting"
        self._cache.suspend()

    def _listen(self) -> None:
        conn = psycopg.connect(
            self._conninfo,
            autocommit=True,
            application_name=f"{APPLICATION_NAME}-{os.getpid()}",
            connect_timeout=max(1, round(self._timeout)),
            keepalives=1,
            keepalives_idle=max(1, round(self._heartbeat)),
            keepalives_interval=1,
            keepalives_count=3,
            tcp_user_timeout=round(self._timeout * 1000),
        )
        try:
            pgconn = conn.pgconn
            pgconn.nonblocking = 1
            self._query(pgconn, f"LISTEN {CHANNEL}; LISTEN {ACK_CHANNEL}".encode())
            poller = select.poll()
            poller.register(pgconn.socket, select.POLLIN)
            with self._apply_lock:
                self._poller = poller
                self._cache.resume()  # flushed: writes made before LISTEN were never heard
            self.backend_pid = pgconn.backend_pid
            self._state = "listening"
            self._listening.set()
            log.info("key cache listener listening on %s", CHANNEL)
            self._serve(pgconn)
        finally:
            conn.close()

    def _serve(self, pgconn: PGconn) -> None:
        next_beat = time.monotonic() + self._heartbeat
        while not self._stopping.is_set():
            wait = next_beat - time.monotonic()
            if wait > 0 and self._readable(pgconn, wait):
                self._drain(pgconn)
                continue
            if time.monotonic() >= next_beat:
                self._query(pgconn, b"SELECT 1")
                self._send_acks(pgconn)  # for notifications that arrived meanwhile
                next_beat = time.monotonic() + self._heartbeat

    def _drain(self, pgconn: PGconn) -> None:
        with self._apply_lock:
            pgconn.consume_input()
            if pgconn.status != pq.ConnStatus.OK:
                raise ListenerLost
            while (notify := pgconn.notifies()) is not None:
                self._receive(notify.relname.decode(), notify.extra.decode(errors="replace"))
            # A server that closes the socket (pg_terminate_backend) leaves it readable with
            # nothing left to consume: recv returns 0, which consume_input reports as an error.
        self._send_acks(pgconn)

    def _receive(self, channel: str, payload: str) -> None:
        if channel == ACK_CHANNEL:
            self._apply_ack(payload)
        else:
            self._apply(payload)

    def _send_acks(self, pgconn: PGconn) -> None:
        """Answer the peers' writes applied by the last drain, in one statement."""
        while self._acks_due:
            batch, self._acks_due = self._acks_due[:100], self._acks_due[100:]
            # Payloads are validated hex origins and digits only (see _apply): safe inline.
            calls = ", ".join(f"pg_notify('{ACK_CHANNEL}', '{ack}')" for ack in batch)
            self._query(pgconn, f"SELECT {calls}".encode())

    def _apply_ack(self, payload: str) -> None:
        writer, _, rest = payload.partition(":")
        sequence, separator, acker = rest.partition(":")
        if writer != self._origin or not separator or not sequence.isdigit():
            return
        with self._echo_lock:
            delivery = self._echoes.get(int(sequence))
        if delivery is not None:
            delivery.answered(acker)

    def _apply(self, payload: str) -> None:
        origin, _, rest = payload.partition(":")
        sequence, separator, user_id = rest.partition(":")
        if (
            not separator
            or len(origin) != ORIGIN_LENGTH
            or not set(origin) <= _HEX
            or not sequence.isdigit()
        ):
            self._cache.clear()  # not ours to parse: evicting everyone is always safe
        elif origin != self._origin:
            self._cache.invalidate(user_id)
            self._acks_due.append(f"{origin}:{int(sequence)}:{self._origin}")
        else:
            with self._echo_lock:
                delivery = self._echoes.get(int(sequence))
            if delivery is not None:
                delivery.echoed()

    def _readable(self, pgconn: PGconn, seconds: float) -> bool:
        """Whether the connection has input within `seconds`; False at once on `stop()`."""
        watched = [pgconn.socket] if self._wake is None else [pgconn.socket, self._wake[0]]
        ready, _, _ = select.select(watched, [], [], seconds)
        return pgconn.socket in ready

    def _query(self, pgconn: PGconn, sql: bytes) -> None:
        """Run one statement with a deadline; applies any notification that arrives meanwhile."""
        deadline = time.monotonic() + self._timeout
        pgconn.send_query(sql)
        while pgconn.flush() != 0:
            _wait(pgconn, deadline, write=True)
        while True:
            with self._apply_lock:
                pgconn.consume_input()
                while (notify := pgconn.notifies()) is not None:
                    self._receive(notify.relname.decode(), notify.extra.decode(errors="replace"))
                busy = pgconn.is_busy()
            if not busy:
                break
            _wait(pgconn, deadline)
        failed = False
        while (result := pgconn.get_result()) is not None:
            failed = failed or result.status not in (
                pq.ExecStatus.COMMAND_OK,
                pq.ExecStatus.TUPLES_OK,
            )
        if failed or pgconn.status != pq.ConnStatus.OK:
            raise ListenerLost


class _Delivery:
    """One write's notification: delivered once the writer's own listener has heard it and
    every peer listener counted in the write's transaction has answered."""

    def __init__(self, peers: int) -> None:
        self.peers = peers
        self.done = threading.Event()
        self._echo = False
        self._answers: set[str] = set()
        self._lock = threading.Lock()

    def echoed(self) -> None:
        with self._lock:
            self._echo = True
            self._check()

    def answered(self, acker: str) -> None:
        with self._lock:
            self._answers.add(acker)
            self._check()

    def missing(self) -> int:
        with self._lock:
            return max(0, self.peers - len(self._answers))

    def _check(self) -> None:
        if self._echo and len(self._answers) >= self.peers:
            self.done.set()


def _wait(pgconn: PGconn, deadline: float, *, write: bool = False) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ListenerLost
    sockets = [pgconn.socket]
    ready = (
        select.select([], sockets, [], remaining)
        if write
        else select.select(sockets, [], [], remaining)
    )
    if not any(ready):
        raise ListenerLost
