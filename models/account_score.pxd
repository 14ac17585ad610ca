# Cython declarations for models/account_score.py (pure-Python mode): the per-scoring
# functions with a typed account (C struct reads) and a dict-typed weight table.
cimport cython

from models.account cimport AccountState

cpdef double _clip(double x)

cpdef _template_calls(AccountState acc, template_owners, min_owners)

cpdef dict _features(AccountState acc, template_owners, payment_owners, youth_days, min_owners)

cpdef double _upper_bound(dict w, AccountState acc, template_owners, payment_owners, youth_days,
                          min_owners) except? -1.0

cpdef double _score(dict w, dict features, cohort) except? -1.0
