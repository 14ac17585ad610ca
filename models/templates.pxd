# Cython declarations for models/templates.py (pure-Python mode: the .py file is the
# source; these give the compiled build C types on the per-event path, match()).
cimport cython

cdef bint _COMPILED
cdef unsigned long long _M1, _M2, _M4, _H01

@cython.locals(x=cython.ulonglong)
cdef int _distance(unsigned long long a, unsigned long long b) noexcept

# never part of a reference cycle (it holds ints and sets and lists of strings and ints)
@cython.no_gc
cdef class _Template:
    cdef public object tid, label, rep, bit_votes, aliases
    cdef public long long count, votes
    cdef public set owners, accounts
    cdef public double last_t

cdef class TemplateIndex:
    cdef public object max_distance, max_owners, _templates, _by_block, _has_block
    cdef public object _singletons, _single_hash, _next_tid
    cdef unsigned char[::1] _flags
    cdef unsigned long long[::1] _hashes

    @cython.locals(limit=cython.int, h=cython.ulonglong, k0=cython.Py_ssize_t,
                   k1=cython.Py_ssize_t, k2=cython.Py_ssize_t, k3=cython.Py_ssize_t,
                   key=cython.Py_ssize_t, by_block=list, singletons=list, templates=dict,
                   tpl=_Template)
    cpdef match(self, simhash, owner, double t, account=*)

    @cython.locals(votes=object)
    cpdef _observe(self, _Template tpl, simhash, owner, account, double t)
