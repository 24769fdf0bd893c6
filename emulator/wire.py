"""The request and response objects every `<api>/responses.py` handler sees: no http.server details leak in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emulator.exceptions import InvalidInput
from emulator.jsonutil import loads

if TYPE_CHECKING:
    from emulator.auth import AccessToken
    from emulator.server import EmulatorOptions
    from emulator.state import EmulatorState

__all__ = ["Request", "Response"]


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    request_id: str
    state: EmulatorState
    options: EmulatorOptions
    token: AccessToken | None = None
    operation: str = ""
    _json: Any = field(default=None, repr=False)

    @property
    def seller_id(self) -> str:
        assert self.token is not None
        return self.token.seller_id or ""

    def q(self, name: str, required: bool = False) -> str | None:
        values = self.query.get(name)
        if not values or values[0] == "":
            if required:
                raise InvalidInput(f"Missing required parameter '{name}'.")
            return None
        return values[0]

    def q_list(self, name: str, required: bool = False) -> list[str]:
        out = [item for value in self.query.get(name, []) for item in value.split(",") if item]
        if required and not out:
            raise InvalidInput(f"Missing required parameter '{name}'.")
        return out

    def q_int(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.q(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InvalidInput(f"'{name}' must be an integer.") from None
        if not low <= value <= high:
            raise InvalidInput(f"'{name}' must be between {low} and {high}.")
        return value

    def q_bool(self, name: str) -> bool:
        raw = (self.q(name) or "false").lower()
        if raw not in ("true", "false"):
            raise InvalidInput(f"'{name}' must be true or false.")
        return raw == "true"

    def json(self) -> Any:
        if self._json is None:
            if not self.body:
                raise InvalidInput("A JSON request body is required.")
            try:
                self._json = loads(self.body)
            except (ValueError, UnicodeDecodeError):
                raise InvalidInput("The request body is not valid JSON.") from None
        return self._json

    def json_object(self) -> dict[str, Any]:
        doc = self.json()
        if not isinstance(doc, dict):
            raise InvalidInput("The request body must be a JSON object.")
        return doc


@dataclass
class Response:
    status: int
    body: Any = None  # dict/list → JSON; bytes → raw
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
