"""Webhook signing secrets encrypted at rest: the key, sealing and opening, migration, rotation.

The ``subscriptions`` table never holds a ``whsec_`` secret in plain text: each is stored
sealed, ``fernet:<token>`` (Fernet from ``cryptography``: AES-128-CBC with an HMAC-SHA256
tag, so a wrong key or a changed token is detected, never silently mis-decrypted).

The key (a Fernet key: 32 random bytes, URL-safe base64, ``hotline access rotate-secrets``
or ``Fernet.generate_key()`` makes one) comes from, first match wins:

1. ``HOTLINE_SECRETS_KEY`` - the key itself (several, comma-separated: the first seals, all
   open, for a rolling change across hosts);
2. ``HOTLINE_SECRETS_KEY_FILE`` - a file holding the key (several: one per line);
3. the default key file ``DEFAULT_KEY_FILE`` (``secrets.key`` in the user's configuration
   folder, ``platformdirs``: ``~/.config/hotline/secrets.key`` on Linux).

The key file (2 or 3) is created with a new key (mode 0600) the first time a secret is
sealed and it does not exist yet; opening a secret never creates one.

Every process that delivers webhooks or exports a secret (``hotline deliver``, ``hotline
subscribe secret``, the dashboard) must see the same key: with a shared store, give all
hosts the same key file or variable. Processes that only match alerts against
subscriptions never open a secret (``subscriptions._row_sub(..., reveal=False)``), so the
pipeline runs without the key.

A store written before encryption has plain-text secrets; they are sealed when the store is
opened (``seal_plaintext``, from ``subscriptions.ensure_schema``, one audit row by the
system). ``rotate(store, actor, new_key)`` re-seals every secret under a new key in one
transaction with one audit row (admin, ``secrets_rotate``); ``rotate_key_file`` does that
and replaces the key file. A missing or wrong key, or a malformed one, is a one-line
``ConfigError`` naming the key's source and the fix.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from platformdirs import user_config_path

from hotline.alerts.access import SYSTEM, Actor, require
from hotline.errors import ConfigError

__all__ = ["DEFAULT_KEY_FILE", "KEY_ENV", "KEY_FILE_ENV", "SEALED_PREFIX", "SecretKeys",
           "generate_key", "is_sealed", "load_keys", "open_secret", "rotate", "rotate_key_file",
           "seal", "seal_plaintext"]

log = logging.getLogger(__name__)

KEY_ENV = "HOTLINE_SECRETS_KEY"
KEY_FILE_ENV = "HOTLINE_SECRETS_KEY_FILE"
#: where the key lives when neither variable is set
DEFAULT_KEY_FILE = user_config_path("hotline") / "secrets.key"
#: the stored form of a sealed secret
SEALED_PREFIX = "fernet:"

_FIX = (f"set {KEY_ENV} or {KEY_FILE_ENV} to the key the secrets were stored with "
        "(or have an admin re-seal them: `hotline access rotate-secrets`)")


def generate_key() -> str:
    """A new random key (URL-safe base64 of 32 bytes)."""
    return Fernet.generate_key().decode()


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


@dataclass(frozen=True)
class SecretKeys:
    """The keys of one source: the first seals, every one opens; ``source`` names where they
    came from (for messages; never the key)."""

    keys: tuple[str, ...]
    source: str
    path: Path | None = None  #: the key file, when they came from one

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError(f"no secrets key in {self.source}; {_FIX}")
        for k in self.keys:
            try:
                Fernet(k.encode())
            except (ValueError, TypeError):
                raise ConfigError(f"the secrets key in {self.source} is not a key (32 bytes, "
                                  "URL-safe base64, e.g. from `hotline access rotate-secrets"
                                  "`)") from None

    @property
    def _fernet(self) -> MultiFernet:
        return MultiFernet([Fernet(k.encode()) for k in self.keys])

    def seal(self, secret: str) -> str:
        """``fernet:<token>`` of ``secret`` (sealed with the first key)."""
        return SEALED_PREFIX + self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str, what: str = "a webhook signing secret") -> str:
        """The plain secret of ``sealed``; a one-line ``ConfigError`` if no key opens it."""
        if not is_sealed(sealed):
            return sealed
        try:
            return self._fernet.decrypt(sealed[len(SEALED_PREFIX):].encode()).decode()
        except InvalidToken:
            raise ConfigError(f"cannot decrypt {what} with the key from {self.source}: wrong "
                              f"key; {_FIX}") from None


def _split(text: str, sep: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in text.replace("\n", sep).split(sep) if k.strip()
                 and not k.strip().startswith("#"))


def _read_key_file(path: Path, source: str) -> SecretKeys:
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"cannot read the secrets key file {path} ({source}): "
                          f"{exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the secrets key file %s is readable by others: chmod 600 %s", path, path)
    return SecretKeys(_split(text, "\n"), f"{source} {path}", path)


def load_keys(create: bool = False, environ: Any = None) -> SecretKeys | None:
    """The secrets key(s) from the environment or the key files (module docstring order).

    Without any: a new default key file if ``create``, else None."""
    env = os.environ if environ is None else environ
    if env.get(KEY_ENV, "").strip():
        return SecretKeys(_split(env[KEY_ENV], ","), f"${KEY_ENV}")
    path, source = DEFAULT_KEY_FILE, "the default key file"
    if env.get(KEY_FILE_ENV, "").strip():
        path, source = Path(env[KEY_FILE_ENV]).expanduser(), f"${KEY_FILE_ENV}"
    if path.exists():
        return _read_key_file(path, source)
    if not create:
        if source != "the default key file":  # named, but absent: say so, do not guess
            return _read_key_file(path, source)
        return None
    _write_key_file(path, generate_key())
    log.warning("created a new secrets key in %s: every host delivering webhooks from this "
                "store needs the same key (%s)", path, KEY_FILE_ENV)
    return _read_key_file(path, source)


def _write_key_file(path: Path, key: str) -> None:
    """Write ``key`` to ``path`` (mode 0600, via a temporary file and a rename)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write the secrets key file {path}: "
                          f"{exc.strerror or exc}") from None


def seal(secret: str) -> str:
    """``secret`` sealed with the current key (a default key file is made if none exists)."""
    keys = load_keys(create=True)
    assert keys is not None
    return keys.seal(secret)


def open_secret(stored: str, what: str = "a webhook signing secret") -> str:
    """The plain secret of a stored value (plain values are returned as they are)."""
    if not is_sealed(stored):
        return stored
    keys = load_keys()
    if keys is None:
        raise ConfigError(f"{what} is encrypted but no secrets key was found ({KEY_ENV}, "
                          f"{KEY_FILE_ENV}, or {DEFAULT_KEY_FILE}); {_FIX}")
    return keys.open(stored, what)


def seal_plaintext(store: Any, cur: Any) -> int:
    """Seal every plain-text secret of the ``subscriptions`` table with ``cur`` (inside the
    caller's transaction); one audit row by the system when any was sealed. Returns how
    many. A row changed meanwhile by another process is left to it."""
    cur.execute(f"SELECT id, secret FROM subscriptions WHERE secret NOT LIKE {store.ph}",
                (SEALED_PREFIX + "%",))
    rows = [(str(i), str(s)) for i, s in cur.fetchall()]
    if not rows:
        return 0
    keys = load_keys(create=True)
    assert keys is not None
    ph = store.ph
    done = []
    for sub_id, plain in rows:
        cur.execute(f"UPDATE subscriptions SET secret = {ph} WHERE id = {ph} AND secret = {ph}",
                    (keys.seal(plain), sub_id, plain))
        if cur.rowcount:
            done.append(sub_id)
    if done:
        from hotline.alerts.audit import append

        append(cur, store, SYSTEM, "secrets_seal", "subscriptions", {"plain_text": len(done)},
               {"sealed": done, "key": keys.source})
        log.info("sealed %d plain-text webhook secret(s) in %s with the key from %s",
                 len(done), getattr(store, "url", "the store"), keys.source)
    return len(done)


def rotate(store: Any, actor: Actor, new_key: str, old: SecretKeys | None = None) -> int:
    """Re-seal every secret of ``store`` under ``new_key`` (admin, ``secrets_rotate``): all
    are opened with ``old`` (default: the current key) first, so a secret no key opens stops
    the rotation before anything changes. One transaction, one audit row; returns how many."""
    require(actor, "secrets_rotate")
    new = SecretKeys((new_key,), "the new key")
    with store.transaction() as cur:  # the table exists from the store's opening on
        cur.execute("SELECT id, secret FROM subscriptions ORDER BY id")
        rows = [(str(i), str(s)) for i, s in cur.fetchall()]
        if old is None and any(is_sealed(s) for _, s in rows):
            old = load_keys()
            if old is None:
                raise ConfigError(f"the secrets are encrypted but no secrets key was found "
                                  f"({KEY_ENV}, {KEY_FILE_ENV}, or {DEFAULT_KEY_FILE}); {_FIX}")
        plain = [(i, old.open(s, f"the secret of subscription {i}") if old else s)
                 for i, s in rows]
        ph = store.ph
        cur.executemany(f"UPDATE subscriptions SET secret = {ph} WHERE id = {ph}",
                        [(new.seal(p), i) for i, p in plain])
        from hotline.alerts.audit import append

        append(cur, store, actor, "secrets_rotate", "subscriptions",
               {"key": old.source if old else None}, {"resealed": len(plain)})
    return len(rows)


def rotate_key_file(store: Any, actor: Actor, new_key_out: Path | None = None,
                    ) -> tuple[int, Path]:
    """Rotate to a new random key and keep it: the new key is written first (to
    ``new_key_out``, default: the current key file, else the default key file, as
    ``<name>.new``), the secrets are re-sealed, then the new file replaces the key file.
    Returns (secrets re-sealed, where the new key is). With the key in ``HOTLINE_SECRETS_KEY``
    (no file to replace), the new key is only written to ``new_key_out`` (required)."""
    require(actor, "secrets_rotate")
    old = load_keys()
    target = new_key_out or (old.path if old is not None else DEFAULT_KEY_FILE)
    if target is None:
        raise ConfigError(f"the key comes from ${KEY_ENV}: give --new-key-file FILE for the "
                          "new key, then put it into the variable")
    key = generate_key()
    staged = target.with_name(target.name + ".new")
    _write_key_file(staged, key)
    try:
        n = rotate(store, actor, key, old)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    try:
        os.replace(staged, target)
    except OSError as exc:
        raise ConfigError(f"the secrets were re-sealed with the new key in {staged}, but it "
                          f"could not replace {target}: {exc.strerror or exc}; move it there "
                          "by hand") from None
    log.info("rotated %d webhook secret(s) to the key in %s", n, target)
    return n, target

