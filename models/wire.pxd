# Cython declarations for models/wire.py (pure-Python mode): the character-level
# checks of finish() in C.
cimport cython

from models._apicall cimport ApiCall as ApiCallSlots, check_layout

# the fast path for the commonest payload shape, in C (models/fastwire.h)
cdef extern from "fastwire.h":
    int fast_init "exw_fast_init" (object cls, object proto, object ip_ok) except -1
    object fast_decode "exw_fast_decode" (object payload)
    Py_ssize_t fast_interned "exw_fast_interned" ()

cdef bint _COMPILED

@cython.locals(ts=str, ip=str, simhash=str, n=cython.Py_ssize_t, i=cython.Py_ssize_t,
               c=cython.Py_UCS4, s1=cython.int, s2=cython.int, f1=cython.int, f2=cython.int,
               f3=cython.int, sec=cython.int, quad=cython.bint, dots=cython.int,
               digits=cython.int, octet=cython.int, lead=cython.int, value=cython.ulonglong,
               minutes=dict, created_epochs=dict, minute=cython.double, rest=cython.double,
               found=cython.bint, t=cython.double, t_end=cython.double)
cpdef bint finish(ApiCallSlots event) except -1
