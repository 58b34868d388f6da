"""Is the credential behind a login still attested? Checked again whenever a grant is used
after the login (refresh, userinfo, introspection), since an attester may revoke it any time.

One read of `Attestation.Attestations(root_hash)` on the warm chain client: the attestation
must still exist, not be revoked, and name the CType and attester the login verified (an
attestation removed and made again by someone else is not the one the user presented). A
DID-only login has no credential and stays valid. An unreachable chain raises
`ChainUnavailable` (a 503): the check fails closed, never open.
"""

from __future__ import annotations

import logging

from opendid.kilt.chain import ChainClient
from opendid.login.identity import Identity

log = logging.getLogger(__name__)


class CredentialCheck:
    def __init__(self, chain: ChainClient) -> None:
        self.chain = chain

    def still_valid(self, identity: Identity) -> bool:
        if identity.root_hash is None:
            return True
        attestation = self.chain.attestation(identity.root_hash)
        if attestation is None:
            reason = "removed"
        elif attestation.revoked:
            reason = "revoked"
        elif attestation.ctype_hash != identity.ctype_hash:
            reason = "now of another CType"
        elif attestation.attester.uri != identity.attester:
            reason = "now by another attester"
        else:
            return True
        log.info("credential of %s no longer valid: attestation %s", identity.did, reason)
        return False
