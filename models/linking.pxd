# Cython declarations for models/linking.py (pure-Python mode): the union-find runs
# over the live suspects at every cluster rebuild.
cimport cython

cdef Py_ssize_t _find(list parent, Py_ssize_t x) except -1

@cython.locals(n=cython.Py_ssize_t, i=cython.Py_ssize_t, j=cython.Py_ssize_t,
               ra=cython.Py_ssize_t, rb=cython.Py_ssize_t, root=cython.Py_ssize_t,
               parent=list, ordered=list, owner_of_key=dict, groups=dict)
cpdef list link_components(members, keys_of)
