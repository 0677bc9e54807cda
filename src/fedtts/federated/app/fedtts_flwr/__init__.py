"""Shims so `flwr run` finds the installed fedtts apps."""
