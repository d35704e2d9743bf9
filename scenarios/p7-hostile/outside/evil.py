# Outside the segment: trifecta must never read this through a link.
def outside_leak():
    pass


class OutsideClass:
    def method(self):
        pass
