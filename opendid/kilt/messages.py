"""Credential-API messages: the encrypted envelope, `request-credential`, `submit-credential`.

Decrypted messages are never logged whole: they carry personal data.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opendid.kilt.credentials import Presentation
from opendid.kilt.crypto import box_decrypt, box_encrypt
from opendid.kilt.encoding import from_hex, to_hex
from opendid.kilt.errors import InvalidHex, InvalidMessage
from opendid.kilt.jsondepth import json_depth

MAX_PRESENTATIONS = 10
MAX_JSON_DEPTH = 64


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class EncryptedMessage(_Strict):
    """The envelope that travels between wallet and service."""

    ciphertext: str
    nonce: str
    senderKeyUri: str
    receiverKeyUri: str

    def nonce_bytes(self) -> bytes:
        return from_hex(self.nonce, 24, "nonce")

    def ciphertext_bytes(self) -> bytes:
        return from_hex(self.ciphertext, None, "ciphertext")


class CTypeRequirement(_Strict):
    cTypeHash: str
    trustedAttesters: list[str] = Field(default_factory=list)
    requiredProperties: list[str] = Field(default_factory=list)


class SubmitCredentialBody(_Strict):
    type: Literal["submit-credential", "credential"]
    content: list[Presentation] = Field(min_length=1, max_length=MAX_PRESENTATIONS)


class SubmitCredentialMessage(_Strict):
    body: SubmitCredentialBody
    sender: str
    receiver: str | None = None
    messageId: str | None = None
    createdAt: int | float | None = None


def parse_envelope(data: object) -> EncryptedMessage:
    """Validate the envelope's shape and its hex fields."""
    try:
        envelope = EncryptedMessage.model_validate(data)
        envelope.nonce_bytes()
        envelope.ciphertext_bytes()
    except (ValidationError, InvalidHex) as exc:
        raise InvalidMessage(f"malformed encrypted message: {_reason(exc)}") from None
    return envelope


def seal(
    message: dict[str, Any],
    sender_key_uri: str,
    receiver_key_uri: str,
    our_secret: bytes,
    their_public: bytes,
) -> dict[str, str]:
    """Encrypt a message as JSON into the envelope the other side expects."""
    plaintext = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    ciphertext, nonce = box_encrypt(plaintext, our_secret, their_public)
    return {
        "ciphertext": to_hex(ciphertext),
        "nonce": to_hex(nonce),
        "senderKeyUri": sender_key_uri,
        "receiverKeyUri": receiver_key_uri,
    }


def open_json(envelope: EncryptedMessage, our_secret: bytes, their_public: bytes) -> object:
    """Decrypt an envelope and parse its JSON (`DecryptionFailed` / `InvalidMessage`)."""
    plaintext = box_decrypt(
        envelope.ciphertext_bytes(), envelope.nonce_bytes(), our_secret, their_public
    )
    try:
        value = json.loads(plaintext)
    except (UnicodeDecodeError, ValueError, RecursionError):  # ValueError: also huge integers
        raise InvalidMessage("decrypted message is not JSON") from None
    check_depth(value)
    return value


def check_depth(value: object, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than any real message (it would only exhaust the stack later)."""
    if json_depth(value, limit) > limit:
        raise InvalidMessage(f"message is nested deeper than {limit} levels")


def parse_submit_credential(data: object) -> SubmitCredentialMessage:
    """Validate a `submit-credential` message strictly (types, required fields)."""
    check_depth(data)
    try:
        return SubmitCredentialMessage.model_validate(data)
    except ValidationError as exc:
        raise InvalidMessage(f"malformed submit-credential message: {_reason(exc)}") from None


def request_credential(
    requirements: list[dict[str, Any]], challenge: str, sender: str, receiver: str
) -> dict[str, Any]:
    """The `request-credential` message OpenDID sends (contract, "Messages")."""
    return {
        "body": {
            "type": "request-credential",
            "content": {"cTypes": requirements, "challenge": challenge},
        },
        "createdAt": int(time.time() * 1000),
        "sender": sender,
        "receiver": receiver,
        "messageId": str(uuid.uuid4()),
        "inReplyTo": None,
        "references": None,
    }


def parse_request_credential(data: object) -> tuple[list[CTypeRequirement], str]:
    """Wallet side: the requirements and challenge of a `request-credential` message."""
    try:
        body = data["body"]  # type: ignore[index]
        if body["type"] != "request-credential":
            raise InvalidMessage(f"expected request-credential, got {body['type']!r}")
        content = body["content"]
        ctypes = [CTypeRequirement.model_validate(c) for c in content["cTypes"]]
        challenge = content["challenge"]
    except (KeyError, TypeError, ValidationError) as exc:
        raise InvalidMessage(f"malformed request-credential message: {_reason(exc)}") from None
    if not isinstance(challenge, str):
        raise InvalidMessage("request-credential challenge must be a string")
    return ctypes, challenge


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else err["msg"]
    return str(exc)
