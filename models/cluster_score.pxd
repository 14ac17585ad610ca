# Cython declarations for models/cluster_score.py (pure-Python mode): co_activity runs
# once per cluster evaluation over its sampled members' recent event times.
cimport cython

@cython.locals(buckets=dict, per_account=list, seen=set, counts=dict, sums=dict, squares=dict,
               t=cython.double, i=cython.Py_ssize_t, b=cython.Py_ssize_t, k=cython.Py_ssize_t,
               c=cython.Py_ssize_t, total=cython.Py_ssize_t, newest=cython.Py_ssize_t,
               per=cython.Py_ssize_t, expected=cython.double, observed=cython.double)
cpdef double co_activity(times_by_account, double bucket_s=*, double stratum_s=*)
