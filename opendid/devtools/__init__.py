"""Development tools: the local dev chain, its provisioning and the dev wallet. Never in production."""
