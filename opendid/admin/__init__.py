"""The /admin page's logic, apart from Flask: who is an admin (`allowlist`), admin sessions
with their CSRF token (`sessions`), the admin's own login through this provider (`login`),
the client form (`forms`) with its chain checks, and the audit log (`audit`)."""
