"""Harness shared by the demos and the tests: services, processes, loopback HTTP.

Nothing here is a pattern. Pages never include these files (the page rules
enforce it); a reader copies a pattern module, not its harness.
"""
