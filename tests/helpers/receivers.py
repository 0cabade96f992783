"""Real alert receivers on 127.0.0.1 for tests: a webhook (HTTP) and an SMTP server.

Both run in background threads, record what they receive and let a test wait for it
with ``wait_for(n, timeout)`` (a condition variable with a deadline, never a fixed sleep).
Use them as pytest fixtures (``webhook_receiver``, ``smtp_receiver``: import them into the
test module), as context managers, or start/stop them by hand.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

WEBHOOK_PATH = "/services/T000/B000/SECRETTOKEN123"
WEBHOOK_TOKEN = "SECRETTOKEN123"


class _Recorder:
    """A list of received items that tests can wait on."""

    def __init__(self):
        self._cond = threading.Condition()
        self._items: list = []

    def _add(self, item) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def wait_for(self, n: int = 1, timeout: float = 10.0) -> list:
        """Block until at least ``n`` items arrived; return them. AssertionError after ``timeout`` s."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._items) >= n, timeout=timeout):
                raise AssertionError(f"{type(self).__name__}: expected {n} item(s) within {timeout}s, "
                                     f"got {len(self._items)}")
            return list(self._items)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class WebhookReceiver(_Recorder):
    """HTTP server recording each POST's JSON body.

    ``fail_first=N`` answers ``fail_status`` (default 500) to the first N POSTs; those are
    counted in ``attempts`` but not in ``bodies``. ``url`` carries a fake secret token
    (``WEBHOOK_TOKEN``) in its path, like a Slack webhook URL.
    """

    def __init__(self, fail_first: int = 0, fail_status: int = 500, path: str = WEBHOOK_PATH):
        super().__init__()
        self.fail_first, self.fail_status, self.path = fail_first, fail_status, path
        self.attempts = 0          # every POST, answered or failed
        self.requests: list[dict] = []   # every POST: {"path", "headers", "raw", "status"}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:  # recorded before answering: the sender sees it once it returns
                    receiver.attempts += 1
                    status = receiver.fail_status if receiver.attempts <= receiver.fail_first else 200
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                              "raw": raw, "status": status})
                    if status == 200:
                        receiver._add(json.loads(raw))
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no")

            def log_message(self, *args):  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="webhook-receiver", daemon=True)
        self._thread.start()
        self._stopped = False

    @property
    def bodies(self) -> list[dict]:
        """JSON bodies of the POSTs answered 200."""
        with self._cond:
            return list(self._items)

    def stop(self) -> None:
        """Stop listening; later connections to ``url`` are refused."""
        if not self._stopped:
            self._stopped = True
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def refused_port():
    """A port on 127.0.0.1 that is bound but not listening: every connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


class SmtpReceiver(_Recorder):
    """aiosmtpd server on 127.0.0.1 storing each message as ``email.message.EmailMessage``.

    With ``username``/``password`` it offers AUTH (without TLS) and accepts only those
    credentials; ``logins`` lists the user names that logged in. ``envelopes`` holds
    (mail_from, rcpt_tos, raw bytes) per message.
    """

    def __init__(self, username: str | None = None, password: str | None = None):
        super().__init__()
        self.username, self.password = username, password
        self.logins: list[str] = []
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's naming
                raw = envelope.original_content or envelope.content
                raw = raw if isinstance(raw, bytes) else raw.encode()
                with receiver._cond:
                    receiver.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), raw))
                receiver._add(email.message_from_bytes(raw, policy=email.policy.default))
                return "250 Message accepted for delivery"

        kwargs = {}
        if username is not None:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        last = None
        for _ in range(5):  # free_port() can race with another process: try a few ports
            self.port = free_port()
            self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)
            try:
                self._controller.start()
                break
            except Exception as e:  # noqa: BLE001
                last = e
        else:
            raise RuntimeError(f"SMTP receiver could not start: {last}")
        self.host = "127.0.0.1"
        self._stopped = False

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.username
              and auth_data.password.decode() == self.password)
        if ok:
            with self._cond:
                self.logins.append(self.username)
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    @property
    def messages(self) -> list:
        with self._cond:
            return list(self._items)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._controller.stop()


@pytest.fixture
def webhook_receiver():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp_receiver():
    receiver = SmtpReceiver()
    yield receiver
    receiver.stop()
