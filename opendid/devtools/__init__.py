"""Development tools: the local dev chain, its provisioning, the dev wallet. Not for production."""
