"""Fixture package for trifecta-verify gates."""

VERSION = "1.0"


def version() -> str:
    return VERSION
