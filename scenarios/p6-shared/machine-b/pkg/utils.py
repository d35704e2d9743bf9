"""Helpers with the shapes the extractor must handle."""
import functools


def plain(a, b=1):
    return a + b


@functools.lru_cache(maxsize=None)
def cached(n):
    return n * 2


async def fetch(url: str) -> bytes:
    return url.encode()


class Registry:
    """A class with methods and a nested class."""

    class Entry:
        def __init__(self, key):
            self.key = key

    def __init__(self):
        self.items = {}

    def add(self, key):
        self.items[key] = Registry.Entry(key)

    @property
    def size(self):
        return len(self.items)

    @staticmethod
    def empty():
        return Registry()
