# Cython declarations for models/evidence.py (pure-Python mode): the per-member loop
# of an alert's evidence reads account fields from their C slots.
cimport cython

from models.account cimport AccountState

@cython.locals(m=AccountState, tpl_counts=dict, task_counts=dict, proxies=dict, payments=set)
cpdef dict _details(dict features, list members, templates, group_summary)
