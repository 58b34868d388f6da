"""Writing to KILT: DID creation and DID-authorised calls (CType, attestation, web3name).

The same code provisions a DID on spiritnet, peregrine or the dev chain. Payloads follow the
SDK: `Did.create` carries the SCALE-encoded creation details signed by the new DID's
authentication key; other DID calls are wrapped in `Did.submit_did_call` with a
`DidAuthorizedCallOperation` (did, tx counter, call, block number, submitter) signed by the
key the call needs (assertion key for CTypes and attestations, authentication for web3names).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from substrateinterface import Keypair
from substrateinterface.exceptions import SubstrateRequestException

from opendid.kilt.chain import ChainClient
from opendid.kilt.credentials import ctype_hash
from opendid.kilt.encoding import to_hex
from opendid.kilt.errors import ChainError
from opendid.kilt.keys import DidKeys

log = logging.getLogger(__name__)


def _scale_type(conn: Any, pallet: str, function: str, arg: int = 0) -> str:
    call = conn.get_metadata_call_function(pallet, function)
    return f"scale_info::{call.value['fields'][arg]['type']}"


def _encode(conn: Any, type_string: str, value: dict[str, Any]) -> bytes:
    obj = conn.runtime_config.create_scale_object(type_string, metadata=conn.metadata)
    return bytes(obj.encode(value).data)


def submit(client: ChainClient, call_module: str, function: str, params: dict[str, Any],
           payer: Keypair) -> dict[str, Any]:
    """Sign with the payer, submit, wait for inclusion; raise `ChainError` if it failed."""
    nonce = client.account_nonce(payer.ss58_address)
    with client.substrate() as conn:
        call = conn.compose_call(call_module, function, params)
        extrinsic = conn.create_signed_extrinsic(call=call, keypair=payer, nonce=nonce)
        try:
            receipt = conn.submit_extrinsic(extrinsic, wait_for_inclusion=True)
        except SubstrateRequestException as exc:
            raise ChainError(_explain_rejection(exc, payer)) from None
        if not receipt.is_success:
            raise ChainError(f"{call_module}.{function} failed: {receipt.error_message}")
        events = [e.value["event"] for e in receipt.triggered_events]
    return {"block": receipt.block_hash, "events": events}


def _explain_rejection(exc: SubstrateRequestException, payer: Keypair) -> str:
    text = str(exc)
    if "Inability to pay" in text or "1010" in text:
        return f"the payer account {payer.ss58_address} cannot pay the fees and deposit: fund it"
    return f"the node rejected the transaction: {text}"


def create_did(client: ChainClient, keys: DidKeys, payer: Keypair, assertion: bool = True) -> bool:
    """Create `keys.did` on chain; False if it exists already.

    Keys: authentication, x25519 key agreement, and (for services and attesters, not for users,
    as Sporran makes them) an assertion key.
    """
    if client.did(keys.did) is not None:
        log.info("DID %s exists already, reusing it", keys.did)
        return False
    details = {
        "did": keys.did.address,
        "submitter": payer.ss58_address,
        "new_key_agreement_keys": [[{"X25519": to_hex(keys.key_agreement_public)}]],
        "new_attestation_key": (
            {"Sr25519": to_hex(keys.assertion.public_key)} if assertion else None
        ),
        "new_delegation_key": None,
        "new_service_details": [],
    }
    with client.substrate() as conn:
        encoded = _encode(conn, _scale_type(conn, "Did", "create", 0), details)
    signature = keys.authentication.sign(encoded)
    submit(client, "Did", "create",
           {"details": details, "signature": {"Sr25519": to_hex(signature)}}, payer)
    log.info("created DID %s", keys.did)
    return True


def submit_did_call(client: ChainClient, keys: DidKeys, signer: Keypair, payer: Keypair,
                    call_module: str, function: str, params: dict[str, Any]) -> dict[str, Any]:
    """Authorise `call_module.function(params)` by the DID and submit it, paid by `payer`."""
    document = client.did(keys.did)
    if document is None:
        raise ChainError(f"DID {keys.did} does not exist on chain")
    block = client.block_number()
    with client.substrate() as conn:
        inner = conn.compose_call(call_module, function, params)
        operation = {
            "did": keys.did.address,
            "tx_counter": document.last_tx_counter + 1,
            "call": inner.value,
            "block_number": block,
            "submitter": payer.ss58_address,
        }
        encoded = _encode(conn, _scale_type(conn, "Did", "submit_did_call", 0), operation)
    signature = signer.sign(encoded)
    return submit(client, "Did", "submit_did_call",
                  {"did_call": operation, "signature": {"Sr25519": to_hex(signature)}}, payer)


def add_ctype(client: ChainClient, keys: DidKeys, payer: Keypair, schema: dict[str, Any]) -> str:
    """Register a CType (idempotent); returns its hash."""
    digest = ctype_hash(schema)
    if client.ctype(digest) is None:
        body = {k: v for k, v in schema.items() if k != "$id"}
        serialized = json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        submit_did_call(client, keys, keys.assertion, payer, "Ctype", "add",
                        {"ctype": "0x" + serialized.encode().hex()})
    return digest


def attest(client: ChainClient, keys: DidKeys, payer: Keypair, root_hash: str,
           ctype: str) -> None:
    """Attest a credential by its root hash (idempotent)."""
    if client.attestation(root_hash) is None:
        submit_did_call(client, keys, keys.assertion, payer, "Attestation", "add",
                        {"claim_hash": root_hash, "ctype_hash": ctype, "authorization": None})


def revoke(client: ChainClient, keys: DidKeys, payer: Keypair, root_hash: str) -> None:
    """Revoke an attestation made by this DID (idempotent)."""
    found = client.attestation(root_hash)
    if found is not None and not found.revoked:
        submit_did_call(client, keys, keys.assertion, payer, "Attestation", "revoke",
                        {"claim_hash": root_hash, "authorization": None})


def claim_web3name(client: ChainClient, keys: DidKeys, payer: Keypair, name: str) -> None:
    """Claim a web3name for the DID (idempotent when the DID holds it already)."""
    current = client.web3name(keys.did)
    if current == name:
        return
    if current is not None:
        raise ChainError(f"DID {keys.did} already holds the web3name {current!r}")
    submit_did_call(client, keys, keys.authentication, payer, "Web3Names", "claim",
                    {"name": "0x" + name.encode().hex()})
