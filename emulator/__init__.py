"""A faithful local Selling Partner API emulator — what moto is for AWS.

Start it with the `spapi-emulator` console script or in-process with `emulator.server.EmulatorServer`. Each Amazon API
lives in its own folder (`listings/`, `feeds/`, `inventory/`, `pricing/`, `orders/`, `notifications/`, `sellers/`)
with a
`models.py` (state and rules, no HTTP) and a `responses.py` (parse the request, call the model, render the wire format).
See `emulator/README.md`.
"""
