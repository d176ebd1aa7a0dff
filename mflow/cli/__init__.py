"""The command-line layer: one click module per command and their shared parts.

The only place in mflow that imports click, prints, or exits.
"""
