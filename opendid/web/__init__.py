"""Flask blueprints: thin adapters from HTTP to the login service and the OpenID provider."""
