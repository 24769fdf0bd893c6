"""Sellers v1: getMarketplaceParticipations for the marketplaces of the token's seller."""

from __future__ import annotations

from emulator.sellers.models import render_participation
from emulator.wire import Request, Response


def get_marketplace_participations(req: Request) -> Response:
    payload = [render_participation(mp, "Emulated Store") for mp in req.state.store.marketplaces(req.seller_id)]
    return Response(200, {"payload": payload})


HANDLERS = {"getMarketplaceParticipations": get_marketplace_participations}
