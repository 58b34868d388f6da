"""The steps of one login, as functions over the login's id and a few stored values.

Each step maps protocol failures to OpenDID's status codes and plain-text messages
(`LoginError`). Challenges are consumed atomically in the one-time store, only once a step has
otherwise succeeded, so bad input changes no state and a replay fails.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from opendid import metrics
from opendid.config import Config
from opendid.kilt.chain import ChainClient
from opendid.kilt.crypto import box_decrypt
from opendid.kilt.didjwt import (
    CLOCK_SKEW,
    DidJwtInvalid,
    check_claims,
    parse_did_jwt,
    verify_did_signature,
)
from opendid.kilt.dids import light_did_encryption_key, parse_full_did, parse_key_uri
from opendid.kilt.encoding import from_hex, to_hex
from opendid.kilt.errors import (
    CredentialInvalid,
    DecryptionFailed,
    InvalidDid,
    InvalidHex,
    InvalidLightDid,
    InvalidMessage,
    InvalidSignature,
)
from opendid.kilt.messages import (
    CTypeRequirement,
    open_json,
    parse_envelope,
    parse_submit_credential,
    request_credential,
    seal,
)
from opendid.kilt.verification import match_requirements, verify_presentations
from opendid.login.identity import Identity
from opendid.store.onetime import OneTimeStore

log = logging.getLogger(__name__)

SESSION_CHALLENGE = "session-challenge"
CREDENTIAL_CHALLENGE = "credential-challenge"
DID_JWT = "did-jwt"


class LoginError(Exception):
    """A failed step: HTTP status and OpenDID's plain-text message."""

    def __init__(self, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.reason = reason


@dataclass(frozen=True)
class ServiceKeys:
    """The service DID's key-agreement key, from `session.*` of the config."""

    key_uri: str
    did: str
    secret: bytes

    @classmethod
    def from_config(cls, config: Config) -> ServiceKeys:
        return cls(
            key_uri=config.session.keyUri,
            did=config.session.keyUri.split("#")[0],
            secret=from_hex(config.session.naclSecretKey.lower(), 32, "session.naclSecretKey"),
        )


class LoginService:
    def __init__(self, config: Config, chain: ChainClient, onetime: OneTimeStore) -> None:
        self.config = config
        self.chain = chain
        self.onetime = onetime
        self.keys = ServiceKeys.from_config(config)
        self.ttl = config.session.sessionTtl

    # -- step 2/3: the secure session with the wallet ---------------------------------------

    def new_challenge(self, login_id: str) -> dict[str, str]:
        """A fresh session challenge; it replaces the login's previous one (one row per login,
        however often the page asks)."""
        challenge = to_hex(os.urandom(32))
        self.onetime.put(SESSION_CHALLENGE, challenge, {"login": login_id}, self.ttl,
                         owner=login_id)
        return {
            "dAppName": self.config.displayName,
            "dAppEncryptionKeyUri": self.keys.key_uri,
            "challenge": challenge,
        }

    def accept_challenge(self, login_id: str, body: Any) -> str:
        """Open the wallet's encrypted challenge; returns the wallet's key URI."""
        if not isinstance(body, dict):
            raise LoginError(400, "Invalid request: expected a JSON object", "bad_request")
        key_uri = body.get("encryptionKeyUri")
        try:
            wallet_key = light_did_encryption_key(key_uri)
        except InvalidLightDid as exc:
            raise LoginError(400, f"Invalid light DID: {exc}", "invalid_light_did") from None
        try:
            ciphertext = from_hex(body.get("encryptedChallenge"), None, "encryptedChallenge")
            nonce = from_hex(body.get("nonce"), 24, "nonce")
            plaintext = box_decrypt(ciphertext, nonce, self.keys.secret, wallet_key)
        except (InvalidHex, DecryptionFailed):
            raise LoginError(401, "Invalid challenge: Unable to decrypt",
                             "bad_challenge") from None
        challenge = to_hex(plaintext)
        stored = self.onetime.peek(SESSION_CHALLENGE, challenge)
        if stored is None or stored.get("login") != login_id:
            raise LoginError(401, "Invalid challenge: Challenge doesn't match", "bad_challenge")
        if self.onetime.take(SESSION_CHALLENGE, challenge) is None:
            raise LoginError(401, "Invalid challenge: Challenge doesn't match", "bad_challenge")
        assert isinstance(key_uri, str)
        log.debug("login %s: wallet session opened", login_id[:8])
        return key_uri

    # -- step 4: request-credential ---------------------------------------------------------

    def request_credential(self, login_id: str, wallet_key_uri: str,
                           requirements: list[dict[str, Any]]) -> tuple[dict[str, str], str]:
        """The encrypted `request-credential` message, and the challenge it carries; the
        challenge replaces the login's previous credential challenge."""
        challenge = to_hex(os.urandom(24))
        message = request_credential(requirements, challenge, self.keys.did,
                                     wallet_key_uri)
        envelope = seal(message, self.keys.key_uri, wallet_key_uri, self.keys.secret,
                        light_did_encryption_key(wallet_key_uri))
        self.onetime.put(CREDENTIAL_CHALLENGE, challenge, {"login": login_id}, self.ttl,
                         owner=login_id)
        return envelope, challenge

    # -- step 5: submit-credential ----------------------------------------------------------

    def submit_credential(self, login_id: str, challenge: str,
                          requirements: list[dict[str, Any]], body: Any) -> Identity:
        """Decrypt, parse and verify the wallet's credential; the identity it proves."""
        try:
            envelope = parse_envelope(body)
            sender_key = parse_key_uri(envelope.senderKeyUri)
        except (InvalidMessage, InvalidDid):
            raise LoginError(400, "Failed to decrypt", "decryption") from None
        document = self.chain.did(sender_key.did)
        key = document.key_agreement_key(sender_key.key_id) if document else None
        if key is None:
            raise LoginError(400, "Failed to decrypt", "decryption")
        try:
            message = open_json(envelope, self.keys.secret, key.public_key)
        except (DecryptionFailed, InvalidMessage):
            raise LoginError(400, "Failed to decrypt", "decryption") from None
        try:
            submission = parse_submit_credential(message)
        except InvalidMessage:
            raise LoginError(400, "Failed to parse message", "bad_message") from None

        try:
            with metrics.timed_verification():
                verified = verify_presentations(submission.body.content, challenge, self.chain,
                                                known=document)
            owner = verified[0].owner
            if owner != sender_key.did:
                raise CredentialInvalid("the message is encrypted by another DID than the owner")
            _check_sender(submission.sender, owner.uri)
            reqs = [CTypeRequirement.model_validate(r) for r in requirements]
            match = match_requirements(verified, reqs) or verified[0]
        except CredentialInvalid as exc:
            log.info("login %s: credential rejected: %s", login_id[:8], exc)
            raise LoginError(400, f"Failed to verify credential: {exc}", exc.reason) from None
        stored = self.onetime.take(CREDENTIAL_CHALLENGE, challenge)
        if stored is None or stored.get("login") != login_id:
            raise LoginError(400, "Failed to verify credential: the challenge was already used",
                             "challenge_used")
        log.info("login %s: verified %s (attester %s)", login_id[:8], owner, match.attester)
        return Identity(owner.uri, match.web3name, match.properties, int(time.time()),
                        match.root_hash, match.ctype_hash, match.attester.uri)

    # -- DID-only login ---------------------------------------------------------------------

    def did_login(self, login_id: str, nonce: str, token: str) -> Identity:
        """A DID-only login: a strictly parsed token, its claims, its signature, used once.

        The token is single-use by what was signed (`didjwt.replay_key`), not by its spelling;
        `sub` is the canonical DID of the signing key. The token itself is never logged.
        """
        try:
            parsed = parse_did_jwt(token)
            check_claims(parsed, nonce, max_lifetime=self.config.didLoginMaxTokenLifetime)
        except DidJwtInvalid as exc:
            raise LoginError(401, f"Failed to verify JWT: {exc}", "jwt_invalid") from None
        document = self.chain.did(parsed.did)
        if document is None:
            raise LoginError(401, "Failed to verify DID Signature", "did_signature")
        try:
            used_key = verify_did_signature(parsed, document)
        except InvalidSignature:
            raise LoginError(401, "Failed to verify DID Signature", "did_signature") from None
        # check_claims bounds exp, so this entry outlives the token by a little, not by years
        ttl = max(float(parsed.payload["exp"]) - time.time(), 0) + CLOCK_SKEW + 60
        if not self.onetime.remember(DID_JWT, used_key, ttl):
            raise LoginError(401, "Failed to verify JWT: the token was already used",
                             "jwt_replayed")
        web3name = self.chain.web3name(parsed.did)
        log.info("login %s: DID-only login of %s", login_id[:8], parsed.did)
        return Identity(parsed.did.uri, web3name, {}, int(time.time()))


def _check_sender(sender: str, owner: str) -> None:
    """The message's `sender` must be the owner; a non-DID placeholder is ignored."""
    if not sender.startswith("did:"):
        return
    try:
        same = parse_full_did(sender.split("#")[0]).uri == owner
    except InvalidDid:
        same = False
    if not same:
        raise CredentialInvalid("the message sender is not the credential owner")
