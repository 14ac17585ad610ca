# Cython declarations for models/aggregate.py (pure-Python mode).
cdef class GroupState:
    cdef public long long v, n, templated
    cdef public double cot_sum
    cdef public long long cot_n
    cdef public double first_t, last_t
    cdef public object accounts, tasks, models
