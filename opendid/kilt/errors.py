"""One typed error per kind of failure, each with a message a user can act on."""


class KiltError(Exception):
    """Base of every error raised by the KILT protocol layer."""


class InvalidDid(KiltError):
    """A DID or DID key URI that is malformed (syntax, SS58 prefix, checksum, key id)."""


class InvalidLightDid(KiltError):
    """A light DID that cannot be parsed or carries no usable key-agreement key."""


class InvalidHex(KiltError):
    """A value that must be 0x-prefixed hex of a given length but is not."""


class DecryptionFailed(KiltError):
    """A NaCl box that does not open with the keys at hand."""


class InvalidSignature(KiltError):
    """A signature that does not verify, or that has an unknown shape."""


class InvalidMessage(KiltError):
    """A Credential-API message that does not have the expected shape."""


class CredentialInvalid(KiltError):
    """A presentation that fails verification (hashes, signature, attestation, requirements);
    `reason` is a fixed word for the kind of failure (counted in metrics), never data."""

    def __init__(self, message: str, reason: str = "credential_invalid") -> None:
        super().__init__(message)
        self.reason = reason


class ChainUnavailable(KiltError):
    """The KILT node cannot be reached or did not answer in time."""


class ChainError(KiltError):
    """The chain answered, but rejected what we asked (a failed extrinsic, a bad call)."""
