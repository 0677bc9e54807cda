"""fedtts.app: the ``fedtts`` command line (cli), batch runner (batch) and other front doors."""
