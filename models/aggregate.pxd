# Cython declarations for models/aggregate.py (pure-Python mode).
cimport cython

# never part of a reference cycle (it holds strings, numbers and containers of them):
# the garbage collector need not track it, which saves its header and its traversals
@cython.no_gc
cdef class GroupState:
    cdef public long long v, n, templated
    cdef public double cot_sum
    cdef public long long cot_n
    cdef public double first_t, last_t
    cdef public object accounts
    cdef public dict tasks, models

# counted per event by the engine (a C call there: engine.pxd cimports it)
@cython.locals(member_set=set)
cpdef update(GroupState state, account_id, double t, task, model, cot, bint templated)

cdef _bump(dict mix, name)
