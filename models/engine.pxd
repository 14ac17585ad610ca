# Cython declarations for models/engine.py (pure-Python mode): the engine's state as
# C struct fields in the compiled build (an instance attribute of an ordinary class
# costs a dict lookup per read there).
cimport cython

from models._apicall cimport ApiCall as ApiCallSlots
from models.account cimport AccountState
from models.aggregate cimport GroupState, update as update_group
from models.templates cimport TemplateIndex

@cython.locals(first=ApiCallSlots, ev=ApiCallSlots, t=cython.double, n=cython.Py_ssize_t,
               i=cython.Py_ssize_t, j=cython.Py_ssize_t)
cpdef _sort_events(list events)

cpdef Py_ssize_t _group_size(dict groups, key) except -1


cdef class Engine:
    cdef public object config, stats, _max_t
    cdef public double _watermark
    cdef public object _partitions, _partition_max, _idle
    cdef public bint _deferring
    cdef public list _buffer
    cdef public double _tail_t
    cdef public object _tail_id
    cdef public bint _unsorted
    cdef public double _due_from, _due_at
    cdef public dict _dedup
    cdef public object _next_tick
    cdef public Py_ssize_t _tick_index
    cdef public object _tick_active, _unscored, _tick_models, _tick_release, _stream_start
    cdef public dict _accounts
    cdef public object _suspects, _payments, _payment_accounts, _proxy_stats, _payment_stats
    cdef public object _pop_tasks, _models_first_seen, _releases, _explicit_releases
    cdef public TemplateIndex _templates
    cdef public object _egress, _egress_cache
    cdef public Py_ssize_t _applied
    cdef public object _scorer, _cluster_scorer, _cohort, _baseline_sums
    cdef public Py_ssize_t _baseline_n
    cdef public object _episodes, _member_episode, _pivot_tests, _pivot_episodes
    cdef public object _cot_tests, _cluster_view, _gone_owners
    # EngineConfig values read per event
    cdef public double _lateness_s, _max_future_s, _dedup_horizon_s

    # the per-event path (compiled with annotation_typing off: these are the only C types)
    @cython.locals(line=bytes, n=cython.Py_ssize_t, blank=cython.Py_ssize_t,
                   first_line=cython.Py_ssize_t)
    cpdef process_lines(self, list lines, source_name, first_line=*)

    # the worker's path: a batch of one source partition (typed: _accept is a C call)
    @cython.locals(i=cython.Py_ssize_t)
    cpdef process_batch(self, list events, partition, list offsets=*, topic=*)

    @cython.locals(partitions=set, idle=set, pmax=dict)
    cpdef _advance_partition(self, partition, double t)

    # (a dict- or set-typed local calls .get/.add/in as C functions, not as methods)
    # (an ApiCallSlots-typed event reads its fields from their slots: models/_apicall.pxd)
    @cython.locals(t=cython.double, lateness=cython.double, buckets=dict, ids=set)
    cpdef _accept(self, ApiCallSlots ev, payload, source, partition=*)

    @cython.locals(ev=ApiCallSlots, acc=AccountState, group=GroupState, templates=TemplateIndex, t=cython.double,
                   lg=cython.double, accounts=dict, member_episode=dict, egress_cache=dict,
                   proxy_stats=dict, payment_stats=dict, unscored=dict, models=dict,
                   models_first_seen=dict, pop_tasks=dict, tick_active=list, mix=dict,
                   rel_t=cython.double)
    cpdef _apply(self, events)

    @cython.locals(acc=AccountState, interval=cython.double, due=list, cluster_models=dict)
    cpdef _tick(self, double boundary, list out)

    cpdef _score_account(self, AccountState acc, double now)

    @cython.locals(keys=list)
    cpdef list _link_keys(self, AccountState acc)

    @cython.locals(m=AccountState, ttl=cython.double, live=list, members=list, gained=cython.bint,
                   suspects_on=dict, keys_by_id=dict, by_id=dict, owners=set)
    cpdef _rebuild_clusters(self, double now, list out)

    @cython.locals(m=AccountState, dt=cython.double, tasks=dict, egress=dict, volumes=list,
                   f=dict, owners=set, n=cython.Py_ssize_t, half_life_s=cython.double,
                   first_t=cython.double, age_sum=cython.double, template_share=cython.double,
                   cot=cython.double, youth=cython.double, shared_payment=cython.Py_ssize_t,
                   shared=cython.Py_ssize_t)
    cpdef _cluster_features(self, list members, double now)

    # cluster updates: once per cluster evaluation, a loop over its members
    @cython.locals(m=AccountState, acc=AccountState, member_episode=dict, overlap=dict,
                   scores=dict, accounts=dict, all_owners=set, inside=cython.Py_ssize_t,
                   last_active_t=cython.double)
    cpdef _update_episode(self, list members, set owners, dict features, double score,
                          double now, list out)

    @cython.locals(m=AccountState, acc=AccountState, usage=dict, member_ids=set,
                   candidates=set, paid_together=set, payments_seen=set)
    cpdef _expand(self, episode, list members, double now)

    cpdef _emit(self, episode, double now, list out)

    @cython.locals(acc=AccountState, samples=list)
    cpdef list _samples(self, account_ids)

    @cython.locals(acc=AccountState, accounts=dict, movers=dict, new=cython.longlong,
                   total=cython.longlong, release_t=cython.double)
    cpdef _check_pivots(self, double now, tuple release, dict cluster_models, dict population,
                        list out)
