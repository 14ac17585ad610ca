# Cython declarations for models/account.py (pure-Python mode: the .py file is
# the source; these only give the compiled build C-typed fields).
cimport cython

# never part of a reference cycle (it holds strings, numbers and containers of them):
# the garbage collector need not track it, which saves its header and its traversals
@cython.no_gc
cdef class AccountState:
    cdef public object account_id, owner, payment, created_t
    cdef public double first_t, last_t
    cdef public long long n, n_hashed
    cdef public object in_tokens, out_tokens
    cdef public double p_cot
    cdef public long long p_cot_n
    cdef public double p_gap_sum, p_gap_sq
    cdef public long long n_folded
    cdef public double w_t, w_n, w_cot, w_cot_n, gap_n, gap_sum, gap_sq
    cdef public object tasks, templates, proxies, main_proxy
    cdef public long long main_count, tick
    cdef public double scored_t
    cdef public object tick_models, last_event_id, recent_t
    cdef public double score
    cdef public object features
    cdef public bint suspect
    cdef public object cluster
    cdef public double cohort_t, cohort
    cdef public bint in_sample
    cdef public double rel_t
    cdef public long long rel_n, rel_new
    cdef public object link_keys
    cdef public double keys_t
