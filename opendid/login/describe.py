"""Words for people: what a client asks for, the steps of a login, why a login failed."""

from __future__ import annotations

from typing import Any

KNOWN_CTYPES = {
    "0x3291bb126e33b4862d421bfaa1d2f272e6cdfc4f96658988fbcffea8914bd9ac": "Email",
    "0x9d271c790775ee831352291f01c5d04c7979713a5896dcf5e81708184cc5c643": "Domain linkage",
}

CREDENTIAL_STEPS = [
    ("session", "Secure session with your wallet"),
    ("request", "Credential request"),
    ("verify", "Verification on the KILT blockchain"),
    ("redirect", "Returning to the application"),
]
DID_STEPS = [
    ("did", "Signing in with your DID"),
    ("verify", "Verification on the KILT blockchain"),
    ("redirect", "Returning to the application"),
]

FAILURES = {
    "cancelled": ("Login cancelled", "You cancelled the login in your wallet."),
    "no-credential": ("No matching credential",
                      "Your wallet holds no credential that this application accepts."),
    "untrusted": ("Credential not accepted",
                  "Your credential was issued by an attester this application does not trust."),
    "verification": ("Verification failed", "Your credential could not be verified."),
    "chain": ("KILT blockchain unreachable",
              "The KILT blockchain cannot be reached right now. Please try again in a moment."),
    "expired": ("Session expired",
                "Your login session has expired. Go back to the application and start again."),
    "timeout": ("No answer from the wallet", "Your wallet did not answer in time."),
    "no-did": ("No DID in your wallet", "Your wallet holds no DID to log in with."),
    "policy": ("Not allowed for this application",
               "This application's login policy does not accept this identity. You can try "
               "another credential or DID, or go back to the application."),
    "error": ("Something went wrong", "The login could not be completed."),
}


def describe_requirement(requirement: dict[str, Any]) -> str:
    name = KNOWN_CTYPES.get(str(requirement.get("cTypeHash", "")).lower())
    kind = f"{name} credential" if name else f"credential of type {requirement['cTypeHash']}"
    properties = requirement.get("requiredProperties") or []
    shown = f" showing {', '.join(properties)}" if properties else ""
    trusted = " from an attester the application trusts" if requirement.get(
        "trustedAttesters") else ""
    return f"an {kind}{shown}{trusted}" if kind[0] in "AEIOU" else f"a {kind}{shown}{trusted}"


def steps(mode: str, current: str, state: str) -> list[dict[str, str]]:
    """Each step with its status: done, active, failed or pending."""
    listed = DID_STEPS if mode == "did" else CREDENTIAL_STEPS
    names = [name for name, _ in listed]
    index = names.index(current) if current in names else -1
    result = []
    for i, (name, label) in enumerate(listed):
        status = "done" if i < index else "pending"
        if i == index:
            status = "failed" if state == "failed" else "active"
        result.append({"name": name, "label": label, "status": status})
    return result


def failure(reason: str) -> tuple[str, str]:
    return FAILURES.get(reason, FAILURES["error"])
