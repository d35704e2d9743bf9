# Outside the segment: the `__init__.py` a linked subpackage would resolve to.
def outside_package():
    pass
