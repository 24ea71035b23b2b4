"""Test-only kit for the integration suite: oracle (and later fault proxy, recorder, checkers)."""
