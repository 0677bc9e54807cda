"""ServerApp entry for `flwr run` (the code lives in fedtts.federated.server_app)."""

from fedtts.federated.server_app import app

__all__ = ["app"]
