"""One module per `bench` command that has grown beyond a few lines (bench.cli parses and dispatches)."""
