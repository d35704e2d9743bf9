"""Entry module."""
from pkg.utils import Registry, plain
from pkg.models import Point


def main():
    r = Registry()
    r.add("a")
    return plain(r.size), Point(1.0, 2.0).norm()


if __name__ == "__main__":
    main()
