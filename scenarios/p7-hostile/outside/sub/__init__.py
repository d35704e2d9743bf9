def outside_sub():
    pass
