"""Web tokens: created once, shown once, stored as sha256 hashes in `<state dir>/web/tokens.json`.

The file is mode 0600 in a 0700 folder, replaced atomically (temp file in the same folder, then
rename) under an exclusive `flock` on `tokens.lock`, so that a `web token create|revoke` and the
server's "last used" updates never lose each other's writes. A token is 32 random bytes
(`secrets.token_urlsafe`), so one sha256 (no salt, no slow hash) is enough: there is nothing to
guess from a hash of 256 random bits. Lookups compare the hash against every record with
`hmac.compare_digest` (constant time, and no early exit over the records).

Revoking deletes the record: the server sees the file change (its mtime and size) and ends that
token's sessions (server.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

SCOPES = ("view", "control")
TOKEN_PREFIX = "fweb_"
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
SCHEMA = "mosaic.fleet.web-tokens/v1"


class TokenStoreError(Exception):
    """The store cannot be read or written (one line for the operator)."""


@dataclass(frozen=True)
class WebToken:
    token_id: str
    label: str
    scope: str
    sha256: str
    created: str
    last_used: str | None = None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class TokenStore:
    """The tokens of one state dir."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = Path(state_dir) / "web"
        self.path = self.folder / "tokens.json"
        self._lock_path = self.folder / "tokens.lock"

    # -- files ---------------------------------------------------------------------------------

    def _ensure_folder(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.folder, 0o700)
        except OSError as exc:
            raise TokenStoreError(f"cannot create {self.folder}: {exc.strerror}") from None

    @contextlib.contextmanager
    def _locked(self, *, wait: bool = True) -> Iterator[None]:
        """The store's lock; `wait=False` raises BlockingIOError when someone holds it."""
        self._ensure_folder()
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def signature(self) -> tuple[int, int, int] | None:
        """What changes when the file does (inode, mtime in ns, size); None without a file."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenStoreError(f"cannot read {self.path}: {exc.strerror}") from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def load(self) -> list[WebToken]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise TokenStoreError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            doc = json.loads(text)
            rows = doc["tokens"]
            return [
                WebToken(
                    token_id=str(r["token_id"]),
                    label=str(r["label"]),
                    scope=str(r["scope"]) if r["scope"] in SCOPES else "view",
                    sha256=str(r["sha256"]),
                    created=str(r["created"]),
                    last_used=str(r["last_used"]) if r.get("last_used") else None,
                )
                for r in rows
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenStoreError(f"{self.path} is not a token file ({exc})") from None

    def _save(self, tokens: list[WebToken]) -> None:
        doc = {"schema": SCHEMA, "tokens": [asdict(t) for t in tokens]}
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", suffix=".json", dir=self.folder)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise TokenStoreError(f"cannot write {self.path}: {exc.strerror}") from None

    # -- verbs ---------------------------------------------------------------------------------

    def create(self, scope: str, label: str | None = None) -> tuple[WebToken, str]:
        """A new token: its record and the token itself (to be shown once)."""
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._locked():
            tokens = self.load()
            token_id = secrets.token_hex(4)
            while any(t.token_id == token_id for t in tokens):
                token_id = secrets.token_hex(4)
            if label is None:
                label = f"{scope}-{token_id}"
            if not LABEL_PATTERN.match(label):
                raise ValueError(f"label {label!r}: use letters, digits, '_', '.', '@', '-' (1-64)")
            if any(t.label == label for t in tokens):
                raise ValueError(f"label {label!r} is taken: revoke it first or choose another")
            record = WebToken(token_id, label, scope, hash_token(token), _now())
            self._save([*tokens, record])
        return record, token

    def revoke(self, which: str) -> WebToken | None:
        """Delete the token whose label or id is `which`; the deleted record, or None."""
        with self._locked():
            tokens = self.load()
            gone = next((t for t in tokens if which in (t.label, t.token_id)), None)
            if gone is not None:
                self._save([t for t in tokens if t is not gone])
        return gone

    def mark_used(self, token_id: str, *, wait: bool = True) -> None:
        """Note that `token_id` was used now. `wait=False` (the web server): skipped, raising
        BlockingIOError, while someone else holds the lock; it is only bookkeeping."""
        with self._locked(wait=wait):
            tokens = self.load()
            now = _now()
            self._save([t if t.token_id != token_id else _used(t, now) for t in tokens])


def _used(t: WebToken, when: str) -> WebToken:
    return WebToken(t.token_id, t.label, t.scope, t.sha256, t.created, when)


def find(tokens: list[WebToken], presented: str) -> WebToken | None:
    """The record `presented` is the token of, or None; compares with every record."""
    digest = hash_token(presented)
    found = None
    for t in tokens:
        if hmac.compare_digest(t.sha256, digest):
            found = t
    return found
