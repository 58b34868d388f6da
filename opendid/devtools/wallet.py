"""A reference wallet: the wallet side of the KILT Credential API, with real keys.

It does what Sporran does for a dApp: opens a session with a fresh temporary light DID,
answers the dApp's challenge in a NaCl box, decrypts `request-credential`, picks a credential
that meets the request, presents it signed over root hash ‖ challenge with the user's
authentication key, and seals `submit-credential` with the user's full-DID key-agreement key.
It also signs DID-only logins (`getDidList`, `signWithDid`). Used by tests, the benchmark and
the dev wallet of the login page.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.public
from substrateinterface import Keypair

from opendid.kilt.chain import ChainClient
from opendid.kilt.credentials import Credential, make_presentation
from opendid.kilt.crypto import box_encrypt
from opendid.kilt.dids import make_light_did, parse_key_uri
from opendid.kilt.encoding import from_hex, to_hex
from opendid.kilt.errors import InvalidMessage
from opendid.kilt.keys import DidKeys
from opendid.kilt.messages import (
    CTypeRequirement,
    open_json,
    parse_envelope,
    parse_request_credential,
    seal,
)


@dataclass
class HeldCredential:
    label: str
    attester: str
    credential: Credential

    @property
    def ctype_hash(self) -> str:
        return str(self.credential.data["claim"]["cTypeHash"])


@dataclass
class WalletSession:
    """One session with a dApp: the temporary light DID and the dApp's key."""

    light_did: str
    secret: bytes
    dapp_key_uri: str
    dapp_public_key: bytes
    challenge_response: dict[str, str]
    requirements: list[CTypeRequirement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for a wallet that keeps its session between requests."""
        return {
            "light_did": self.light_did, "secret": to_hex(self.secret),
            "dapp_key_uri": self.dapp_key_uri, "dapp_public_key": to_hex(self.dapp_public_key),
            "challenge_response": self.challenge_response,
            "requirements": [r.model_dump() for r in self.requirements],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WalletSession:
        return cls(data["light_did"], from_hex(data["secret"], 32), data["dapp_key_uri"],
                   from_hex(data["dapp_public_key"], 32), data["challenge_response"],
                   [CTypeRequirement.model_validate(r) for r in data["requirements"]])


class Wallet:
    """A user's wallet: their DID keys and credentials."""

    def __init__(self, mnemonic: str, credentials: list[HeldCredential], name: str = "Dev wallet",
                 web3name: str | None = None) -> None:
        self.keys = DidKeys.from_mnemonic(mnemonic)
        self.credentials = credentials
        self.name = name
        self.web3name = web3name

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Wallet:
        data = json.loads(Path(path).read_text())
        held = [HeldCredential(c["label"], c["attester"], Credential(c["credential"]))
                for c in data["credentials"]]
        return cls(data["mnemonic"], held, data.get("name", "Dev wallet"), data.get("web3name"))

    @property
    def did(self) -> str:
        return self.keys.did.uri

    # -- Credential API: startSession -------------------------------------------------------

    def start_session(self, dapp_key_uri: str, challenge: str, chain: ChainClient) -> WalletSession:
        """Resolve the dApp's key agreement key on chain and answer its challenge."""
        key_uri = parse_key_uri(dapp_key_uri)
        document = chain.did(key_uri.did)
        key = document.key_agreement_key(key_uri.key_id) if document else None
        if key is None:
            raise InvalidMessage(f"the dApp key {dapp_key_uri} is not on chain")
        auth = Keypair.create_from_seed(os.urandom(32).hex(), ss58_format=38)
        secret = bytes(nacl.public.PrivateKey.generate())
        light = make_light_did("sr25519", auth.public_key, _public(secret))
        ciphertext, nonce = box_encrypt(from_hex(challenge, 32, "challenge"), secret,
                                        key.public_key)
        response = {
            "encryptionKeyUri": light + "#encryption",
            "encryptedChallenge": to_hex(ciphertext),
            "nonce": to_hex(nonce),
        }
        return WalletSession(light, secret, dapp_key_uri, key.public_key, response)

    # -- Credential API: request-credential -> submit-credential ----------------------------

    def read_request(self, session: WalletSession, envelope: dict[str, Any]) -> tuple[
            list[CTypeRequirement], str]:
        """Decrypt the dApp's `request-credential` message."""
        parsed = parse_envelope(envelope)
        message = open_json(parsed, session.secret, session.dapp_public_key)
        requirements, challenge = parse_request_credential(message)
        session.requirements = requirements
        return requirements, challenge

    def matching(self, requirements: list[CTypeRequirement]) -> list[HeldCredential]:
        """Credentials that meet a requirement, as Sporran lists them for the user."""
        found = []
        for held in self.credentials:
            for req in requirements:
                trusted = not req.trustedAttesters or held.attester in req.trustedAttesters
                if held.ctype_hash == req.cTypeHash and trusted:
                    found.append(held)
                    break
        return found

    def candidates(self, requirements: list[CTypeRequirement]) -> list[tuple[int, HeldCredential,
                                                                             bool]]:
        """(index, credential, trusted) of every credential of a requested CType, trusted first:
        what a wallet shows the user to choose from."""
        found = []
        for index, held in enumerate(self.credentials):
            for req in requirements:
                if held.ctype_hash == req.cTypeHash:
                    trusted = not req.trustedAttesters or held.attester in req.trustedAttesters
                    found.append((index, held, trusted))
                    break
        return sorted(found, key=lambda entry: not entry[2])

    def submit(self, session: WalletSession, held: HeldCredential, challenge: str,
               sender: str | None = None,
               tamper: Callable[[dict[str, Any]], None] | None = None) -> dict[str, str]:
        """Present `held` and seal `submit-credential` to the dApp.

        `sender` and `tamper` exist for negative tests (a lying sender, a modified presentation).
        """
        presentation = make_presentation(
            held.credential, self.keys.authentication_key_uri.uri,
            self.keys.authentication.sign, challenge,
        )
        if tamper is not None:
            tamper(presentation)
        message = {
            "body": {"type": "submit-credential", "content": [presentation]},
            "createdAt": 0,
            "sender": sender or self.did,
            "receiver": session.dapp_key_uri.split("#")[0],
            "messageId": os.urandom(16).hex(),
            "inReplyTo": None,
            "references": None,
        }
        return seal(message, self.keys.key_agreement_key_uri.uri, session.dapp_key_uri,
                    self.keys.key_agreement_secret, session.dapp_public_key)

    # -- DID-only login ---------------------------------------------------------------------

    def get_did_list(self) -> list[dict[str, str]]:
        return [{"did": self.did, "name": self.web3name or self.name}]

    def sign_with_did(self, data: str) -> dict[str, str]:
        """Sign the ASCII bytes of `data` with the DID's authentication key (`signWithDid`)."""
        signature = self.keys.authentication.sign(data.encode("ascii"))
        return {"signature": to_hex(signature), "didKeyUri": self.keys.authentication_key_uri.uri}


def _public(secret: bytes) -> bytes:
    return bytes(nacl.public.PrivateKey(secret).public_key)
