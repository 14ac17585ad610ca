"""The process starts no thread pool of its own for numerical work."""

import os
import subprocess
import sys


def test_the_models_run_without_blas_threads_spinning_beside_them():
    # numpy and scipy, loaded by River, start OpenBLAS threads that spin between calls;
    # on a 2-core host beside a broker that is a core taken for vectors of a few dozen
    # numbers. Importing the package sets them to one unless the operator chose.
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    probe = ("import os, extraction_watch.cli, models.cohort, numpy, scipy.linalg; "
             "print(len(os.listdir('/proc/self/task')), os.environ['OPENBLAS_NUM_THREADS'])")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["1", "1"]
    chosen = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=dict(env, OPENBLAS_NUM_THREADS="2"), check=True).stdout.split()
    assert chosen[1] == "2" and int(chosen[0]) >= 2  # the operator's setting is kept
