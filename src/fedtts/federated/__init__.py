"""fedtts.federated"""
