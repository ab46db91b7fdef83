"""Internals of :mod:`streams.simulation.simulator`, which is the one public entry.

``world`` holds the calibrated tables, ``day`` draws one day, ``faults`` spoils a feed,
``fx`` the exchange rates, ``draws`` random streams and ids, ``render`` the JSON lines.
"""
