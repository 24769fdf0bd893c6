"""Reliability scenarios (issue 6): inject a fault, then assert the six invariants.

`reliability.invariants` asserts them, `reliability.wiretap` records (and can fault) what reaches the emulator,
`reliability.report` prints the table, `python -m reliability` runs every scenario (slow ones too) and prints it.
"""
