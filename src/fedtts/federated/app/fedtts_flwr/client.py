"""ClientApp entry for `flwr run` (the code lives in fedtts.federated.client_app)."""

from fedtts.federated.client_app import app

__all__ = ["app"]
