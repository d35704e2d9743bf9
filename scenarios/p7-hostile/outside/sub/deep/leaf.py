def outside_leaf():
    return 1
