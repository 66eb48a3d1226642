"""The in-process app fixtures of tests/proxy, for the pricing tests that go through the app."""

from tests.proxy.conftest import gateway, upstream  # noqa: F401  (fixtures, found by name)
