"""The login service: the steps of one login as plain functions over a session record."""
