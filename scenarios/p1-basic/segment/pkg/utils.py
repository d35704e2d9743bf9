"""Small fixture module: one of each construct the symbol extractor must report."""

import functools


def plain(x):
    return x + 1


@functools.lru_cache(maxsize=None)
def cached(n):
    """A decorated function: its line is the `def` line, not the decorator's."""
    return n * 2


class Greeter:
    """A class with methods and a nested class."""

    greeting = "hello"

    def __init__(self, name):
        self.name = name

    @staticmethod
    def shout(text):
        return text.upper()

    async def greet_later(self):
        return f"{self.greeting} {self.name}"

    class Config:
        loud = False

        def toggle(self):
            self.loud = not self.loud


async def fetch(url):
    # An async top-level function.
    return url


if __name__ == "__main__":
    def not_a_symbol():
        pass
