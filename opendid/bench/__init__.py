"""Benchmarks (`python -m opendid.bench --help`): chain reads, complete logins under gunicorn,
and a bounded load-and-fault run."""
