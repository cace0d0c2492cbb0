"""The call gate's settings (api/gate.py), in a module of their own that imports no grpc, so
the root settings (config.py) can compose them without pulling in the gRPC layer."""

from __future__ import annotations

from dataclasses import dataclass

from chat_service.envconfig import var


@dataclass(frozen=True)
class GateSettings:
    # Calls without `authorization` metadata waiting for their first message, at most.
    preauth_max: int = var("PREAUTH_MAX_CALLS", 64)
    # ... and how long each may wait for it.
    preauth_timeout: float = var("PREAUTH_TIMEOUT_SECONDS", 5.0)
    # An authenticated call's request (and each upload chunk) must arrive within this.
    body_timeout: float = var("REQUEST_BODY_TIMEOUT_SECONDS", 10.0)
