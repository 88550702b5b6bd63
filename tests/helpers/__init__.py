"""Code the test modules share (fixtures and the case's constants live in conftest.py): `http` the
one HTTP client of the tests, `logs` access logs with a known truth, `load` the load generator."""
