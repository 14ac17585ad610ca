# Cython declarations for models/cluster_score.py (pure-Python mode): co_activity runs
# once per cluster evaluation over its sampled members' recent event times.
cimport cython

@cython.locals(buckets=dict, per_account=list, seen=set, lo=cython.double, hi=cython.double,
               t=cython.double, i=cython.Py_ssize_t, total=cython.Py_ssize_t,
               squares=cython.Py_ssize_t, span_buckets=cython.double, expected=cython.double,
               observed=cython.double)
cpdef double co_activity(times_by_account, double bucket_s=*)
