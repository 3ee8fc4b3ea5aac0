"""Plain records, the bottom layer: sessions, runs, messages, events, errors and how numbers read.

Nothing here reads a store or calls a model; every other layer imports these.
"""
