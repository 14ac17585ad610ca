"""extraction-watch: command line, simulator, evaluation and reports around :mod:`models`."""
