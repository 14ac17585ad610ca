"""extraction-watch: command line, simulator, evaluation and reports around :mod:`models`."""

import os

# numpy and scipy (imported by River) each start an OpenBLAS thread per core, which
# spin between calls; the models' vectors are a few dozen numbers, so a second thread
# only takes a core from the broker or another worker. Set before numpy loads (this
# package is imported before any model); an operator's own setting wins.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
