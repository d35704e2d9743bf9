"""p1-basic fixture package: a small module (utils) and a large one (big)."""
