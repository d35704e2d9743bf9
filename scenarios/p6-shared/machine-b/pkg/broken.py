"""A module with a syntax error in the middle: symbols around it must still be found."""


def before():
    return 1


def broken(:
    pass


class After:
    def method(self):
        return 2
