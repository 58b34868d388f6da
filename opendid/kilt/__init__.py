"""The KILT protocol layer: DIDs, crypto, credentials, Credential-API messages and the chain.

Nothing in this package knows about Flask or OIDC; the web and login layers call into it.
"""
