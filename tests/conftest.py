"""Shared fixtures. The SP-API emulator fixtures live in `emulator.testing` so any test can start one."""

pytest_plugins = ["emulator.testing"]
