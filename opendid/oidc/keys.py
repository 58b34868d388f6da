"""Signing keys: OpenDID's configured JWT key, and the asymmetric keys published in JWKS.

The JWKS keys (RS256, ES256, EdDSA) are generated into `instance/jwks.json` on first start and
kept. `rotate()` adds a new current key per algorithm; a retired key stays published until every
token it signed has expired. Running workers notice a rotation within a few seconds.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

from joserfc import jwk

from opendid.config import JwtConfig
from opendid.private_files import ensure_private_file, open_private, private_dir, write_private

warnings.filterwarnings("ignore", message="EdDSA is deprecated", module="joserfc")

JWKS_ALGORITHMS = ("RS256", "ES256", "EdDSA")
RELOAD_INTERVAL = 5.0
Key = jwk.OctKey | jwk.RSAKey | jwk.ECKey | jwk.OKPKey


def _generate(alg: str) -> Key:
    params = {"kid": uuid.uuid4().hex, "alg": alg, "use": "sig"}
    if alg == "RS256":
        return jwk.RSAKey.generate_key(2048, parameters=params)
    if alg == "ES256":
        return jwk.ECKey.generate_key("P-256", parameters=params)
    return jwk.OKPKey.generate_key("Ed25519", parameters=params)


def config_key(jwt: JwtConfig) -> Key:
    """OpenDID's key: the HMAC secret text for HS*, a PEM private key for RS*/ES*."""
    if jwt.algorithm.startswith("HS"):
        return jwk.OctKey.import_key(jwt.secretKey)
    if jwt.algorithm.startswith("RS"):
        return jwk.RSAKey.import_key(jwt.secretKey)
    return jwk.ECKey.import_key(jwt.secretKey)


class KeyRing:
    """The JWKS keys, persisted as private JWKs with creation and retirement times."""

    def __init__(self, path: Path, max_token_lifetime: int) -> None:
        self.path = path
        self.max_token_lifetime = max_token_lifetime
        self._entries = self._load_or_create()
        self._imported: dict[str, Key] = {}
        self._mtime = self.path.stat().st_mtime
        self._checked = time.monotonic()

    def _fresh(self) -> list[dict[str, Any]]:
        """The entries, re-read when another process (`opendid keys rotate`) changed the file;
        the file is looked at no more than every few seconds."""
        if time.monotonic() - self._checked > RELOAD_INTERVAL:
            self._checked = time.monotonic()
            mtime = self.path.stat().st_mtime
            if mtime != self._mtime:
                self._entries, self._mtime = json.loads(self.path.read_text()), mtime
        return self._entries

    def _load_or_create(self) -> list[dict[str, Any]]:
        private_dir(self.path.parent)
        with os.fdopen(open_private(self.path.with_suffix(".lock")), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # several workers may start at once
            if self.path.exists():
                ensure_private_file(self.path)  # a file an older version left readable
            entries = json.loads(self.path.read_text()) if self.path.exists() else []
            missing = [a for a in JWKS_ALGORITHMS if not self._current(entries, a)]
            if missing:
                entries += [self._entry(a) for a in missing]
                self._save(entries)
        return entries

    @staticmethod
    def _entry(alg: str) -> dict[str, Any]:
        return {"alg": alg, "created": time.time(), "retired": None,
                "jwk": _generate(alg).as_dict(private=True)}

    @staticmethod
    def _current(entries: list[dict[str, Any]], alg: str) -> dict[str, Any] | None:
        live = [e for e in entries if e["alg"] == alg and e["retired"] is None]
        return max(live, key=lambda e: e["created"]) if live else None

    def _save(self, entries: list[dict[str, Any]]) -> None:
        write_private(self.path, json.dumps(entries))

    def _key(self, entry: dict[str, Any]) -> Key:
        """Imported once: importing an RSA private key checks it, which costs tens of ms."""
        kid = entry["jwk"]["kid"]
        if kid not in self._imported:
            self._imported[kid] = jwk.import_key(entry["jwk"])
        return self._imported[kid]

    def signing_key(self, alg: str) -> Key:
        entry = self._current(self._fresh(), alg)
        if entry is None:
            raise KeyError(f"no signing key for {alg}")
        return self._key(entry)

    def public_jwks(self) -> dict[str, list[dict[str, Any]]]:
        """Current keys plus retired ones whose tokens may still be valid."""
        horizon = time.time() - self.max_token_lifetime
        keys = []
        for entry in self._fresh():
            if entry["retired"] is None or entry["retired"] > horizon:
                keys.append(self._key(entry).as_dict(private=False))
        return {"keys": keys}

    def verification_keys(self) -> jwk.KeySet:
        return jwk.KeySet.import_key_set(self.public_jwks())  # type: ignore[arg-type]

    def rotate(self) -> None:
        with os.fdopen(open_private(self.path.with_suffix(".lock")), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = json.loads(self.path.read_text())
            now = time.time()
            for entry in entries:
                if entry["retired"] is None:
                    entry["retired"] = now
            entries += [self._entry(a) for a in JWKS_ALGORITHMS]
            horizon = now - self.max_token_lifetime
            entries = [e for e in entries if e["retired"] is None or e["retired"] > horizon]
            self._save(entries)
        self._entries, self._mtime = entries, self.path.stat().st_mtime
