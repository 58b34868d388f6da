"""The OpenID provider on authlib: grants, token minting, discovery, JWKS, userinfo."""
