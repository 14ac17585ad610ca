"""Near-duplicate prompt templates from 64-bit SimHash fingerprints.

Two prompts are instances of one template when their SimHashes differ in at
most ``max_distance`` bits (default 7: a random pair of 64-bit hashes is that
close with probability about 1e-11, while templated prompts with filled-in
slots often differ in 4-7 bits). Candidates are found by the pigeonhole trick of
Manku et al. (2007): two fingerprints within 3 bits agree exactly on at least
one of four 16-bit blocks (and most pairs within 4-6 bits do too); each
candidate is confirmed by the Hamming distance. A fingerprint seen once waits
as a *singleton* in one slot per block value (a newer singleton overwrites an
older one, so this memory is bounded by 4 x 65536 slots whatever the traffic);
a second sighting promotes it to a template. A template sent thousands of
times is found even if some of its early sightings were overwritten. A template's representative is the bitwise majority of its
first instances, so it converges on the template's centre.

The index counts the distinct *owners* (an org, else an account) that used a
template: a template shared by many owners is a coordination signal only in
combination with other evidence, because popular public templates exist.

Memory stays flat over a long stream. A template's users are the accounts
(and their owners) that used it *and are still tracked*: the engine calls
:meth:`TemplateIndex.retain` whenever it evicts idle accounts (after its idle
TTL, 3 days by default), which drops the evicted ones from every template, so
a popular template that lives for months counts its current users, not
everyone who ever sent it (``max_owners`` remains a hard cap). A template idle
for the TTL is forgotten by :meth:`TemplateIndex.expire`. The ids of templates
merged into another resolve to the survivor only while someone holds them: an
instance that founds a template which at once joins an older one never gets
an id of its own, and :meth:`TemplateIndex.forget_aliases` drops the merged
ids no tracked account counts any more (a long-lived popular template used
to gather thousands of them, about 1,500 per million events).

>>> index = TemplateIndex(max_distance=4)
>>> base = 0x0123456789ABCDEF
>>> index.match(base, "alice", 0.0) is None      # first sighting: a singleton
True
>>> tid = index.match(base ^ 0b101, "bob", 1.0)  # 2 bits away: a template
>>> index.match(base ^ 0b1000000, "carol", 2.0) == tid
True
>>> index.owners(tid), index.count(tid)
(3, 3)
>>> index.match(0xFEDCBA9876543210, "dave", 3.0) is None
True
>>> owner_of = {"alice": "alice", "carol": "carol"}.get   # "bob" is no longer tracked
>>> index.retain(owner_of), index.owners(tid), sorted(index.accounts(tid))
(1, 2, ['alice', 'carol'])
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Container

from models._state import field_values, restore_fields

# whether this module runs compiled (models/_native.py): an extension module's file
# is not a .py file
_COMPILED = not __file__.endswith((".py", ".pyc"))

__all__ = ["TemplateIndex"]

_BLOCK_SHIFTS = (48, 32, 16, 0)
_REFINE_AT = frozenset({3, 4, 8, 16, 32})
_SLOTS = 0x40000  # 4 blocks x 65536 block values: a block key indexes a flat list
_BITS64 = (1 << 64) - 1
# bit votes are counted in byte lanes of one int: the 64 binary digits of a
# fingerprint become 64 bytes of 0 or 1 (bit i in byte i from the low end), so
# one integer addition counts all 64 bits (a lane holds at most 32 votes)
_TO_LANES = bytes.maketrans(b"01", b"\x00\x01")


# SWAR popcount masks (C unsigned 64-bit constants in the compiled build: templates.pxd)
_M1 = 0x5555555555555555
_M2 = 0x3333333333333333
_M4 = 0x0F0F0F0F0F0F0F0F
_H01 = 0x0101010101010101


def _distance(a, b):  # (typed in templates.pxd)
    """Hamming distance of two 64-bit fingerprints."""
    x = a ^ b
    if not _COMPILED:
        return x.bit_count()
    # the compiled build: popcount in C unsigned 64-bit arithmetic (the product wraps
    # modulo 2**64 there; this branch never runs in pure Python)
    x -= (x >> 1) & _M1
    x = (x & _M2) + ((x >> 2) & _M2)
    x = (x + (x >> 4)) & _M4
    return (x * _H01) >> 56


def _block_keys(h: int) -> tuple[int, int, int, int]:
    return (
        (h >> 48) & 0xFFFF,
        0x10000 | ((h >> 32) & 0xFFFF),
        0x20000 | ((h >> 16) & 0xFFFF),
        0x30000 | (h & 0xFFFF),
    )


class _Template:  # (a typed extension type in the compiled build: templates.pxd)
    __slots__ = ("tid", "label", "rep", "count", "owners", "accounts", "last_t", "bit_votes",
                 "votes", "aliases")

    def __init__(self, tid: int, rep: int, t: float) -> None:
        self.tid = tid
        self.label = f"tpl-{rep:016x}"
        self.rep = rep
        self.count = 0
        self.owners: set[str] = set()
        self.accounts: set[str] = set()
        self.last_t = t
        self.bit_votes: int | None = 0  # byte lanes, see _TO_LANES
        self.votes = 0
        self.aliases: list[int] | None = None  # ids of templates merged into this one

    def __reduce__(self) -> tuple:
        # the same pickle from the compiled and the pure-Python build
        return _restore_template, (field_values(self, _TEMPLATE_FIELDS),)


class TemplateIndex:
    """Assign SimHash fingerprints to near-duplicate templates.

    Parameters
    ----------
    max_distance
        Largest Hamming distance between an instance and its template's centre.
    max_owners
        Accounts (and owners) remembered per template; counts saturate there.
    """

    def __init__(self, max_distance: int = 7, max_owners: int = 20_000):
        self.max_distance = max_distance
        self.max_owners = max_owners
        self._templates: dict[int, _Template] = {}
        # block key -> template ids (flat lists: indexing one beats hashing into a
        # dict on the hot path), with a compact "any template here" flag per key
        self._by_block: list[list[int] | None] = [None] * _SLOTS
        self._has_block = bytearray(_SLOTS)
        # block key -> the singleton waiting there (its owner and account, or the
        # account alone when it is its own owner), and its
        # fingerprint in a packed array (what every call compares; the entry is read
        # only on a match)
        self._singletons: list[tuple[str, str] | str | None] = [None] * _SLOTS
        self._single_hash = array("Q", bytes(8 * _SLOTS))
        self._next_tid = 1
        self._views()

    def _views(self) -> None:
        # what match() reads: in the compiled build, typed views of the same memory
        self._flags = self._has_block
        self._hashes = self._single_hash

    def __reduce__(self) -> tuple:
        # the same pickle from the compiled and the pure-Python build
        return _restore_index, ((self.max_distance, self.max_owners, self._templates,
                                 self._by_block, self._has_block, self._singletons,
                                 self._single_hash, self._next_tid),)

    # -- queries -----------------------------------------------------------
    def owners(self, tid: int) -> int:
        tpl = self._templates.get(tid)
        return len(tpl.owners) if tpl is not None else 0

    def accounts(self, tid: int) -> set[str]:
        """Accounts seen using the template (up to ``max_owners``)."""
        tpl = self._templates.get(tid)
        return tpl.accounts if tpl is not None else set()

    def owner_set(self, tid: int) -> set[str]:
        tpl = self._templates.get(tid)
        return tpl.owners if tpl is not None else set()

    def count(self, tid: int) -> int:
        tpl = self._templates.get(tid)
        return tpl.count if tpl is not None else 0

    def __contains__(self, tid: object) -> bool:
        """Whether ``tid`` names a live template (ids are never reused once expired)."""
        return tid in self._templates

    def label(self, tid: int) -> str:
        tpl = self._templates.get(tid)
        return tpl.label if tpl is not None else f"tpl-expired-{tid}"

    # -- the hot path ------------------------------------------------------
    def match(self, simhash, owner, t, account=None):  # (typed in templates.pxd)
        """Return the template id of ``simhash`` (None while it is a singleton).

        ``simhash`` is a 64-bit fingerprint (an int in ``[0, 2**64)``), ``owner``
        who sent it, ``t`` its event time, ``account`` the account (if not the owner).
        """
        limit = self.max_distance
        h = simhash
        k0 = (h >> 48) & 0xFFFF
        k1 = 0x10000 | ((h >> 32) & 0xFFFF)
        k2 = 0x20000 | ((h >> 16) & 0xFFFF)
        k3 = 0x30000 | (h & 0xFFFF)
        flags = self._flags
        if flags[k0] or flags[k1] or flags[k2] or flags[k3]:
            templates = self._templates
            by_block = self._by_block
            for key in (k0, k1, k2, k3):
                tids = by_block[key]
                if tids:
                    for tid in tids:
                        tpl = templates[tid]
                        if _distance(tpl.rep, h) <= limit:
                            self._observe(tpl, simhash, owner, account or owner, t)
                            return tid
        # a slot's packed fingerprint is meaningful only while its entry is set
        hashes = self._hashes
        singletons = self._singletons
        if _distance(hashes[k0], h) <= limit and (slot := singletons[k0]) is not None:
            return self._promote(slot, hashes[k0], simhash, owner, account or owner, t)
        if _distance(hashes[k1], h) <= limit and (slot := singletons[k1]) is not None:
            return self._promote(slot, hashes[k1], simhash, owner, account or owner, t)
        if _distance(hashes[k2], h) <= limit and (slot := singletons[k2]) is not None:
            return self._promote(slot, hashes[k2], simhash, owner, account or owner, t)
        if _distance(hashes[k3], h) <= limit and (slot := singletons[k3]) is not None:
            return self._promote(slot, hashes[k3], simhash, owner, account or owner, t)
        hashes[k0] = hashes[k1] = hashes[k2] = hashes[k3] = h
        # the account alone when it is its own owner (no tuple per singleton)
        if account is None or account == owner:
            singletons[k0] = singletons[k1] = singletons[k2] = singletons[k3] = owner
        else:
            singletons[k0] = singletons[k1] = singletons[k2] = singletons[k3] = (owner, account)
        return None

    def _observe(self, tpl: _Template, simhash: int, owner: str, account: str, t: float) -> None:
        tpl.count += 1
        tpl.last_t = t
        if len(tpl.accounts) < self.max_owners:
            tpl.owners.add(owner)
            tpl.accounts.add(account)
        votes = tpl.bit_votes
        if votes is not None:
            tpl.bit_votes = votes + int.from_bytes(
                f"{simhash & _BITS64:064b}".encode().translate(_TO_LANES), "big")
            tpl.votes += 1
            if tpl.votes in _REFINE_AT:
                self._refine(tpl)
            if tpl.votes >= 32:
                tpl.bit_votes = None

    def _refine(self, tpl: _Template) -> None:
        votes = tpl.bit_votes
        assert votes is not None
        half = tpl.votes / 2
        centre = 0
        for bit, count in enumerate(votes.to_bytes(64, "little")):
            if count > half:
                centre |= 1 << bit
        if centre != tpl.rep:
            self._unindex(tpl)
            tpl.rep = centre
            self._index(tpl)
            self._merge_near(tpl)

    def _merge_near(self, tpl: _Template, fresh: bool = False) -> _Template:
        """Early instances can found two templates for one; join them once centres meet.

        Returns the survivor. ``fresh``: ``tpl`` was just founded and its id not
        handed out yet, so if it is the one merged away its id needs no alias.
        """
        for key in _block_keys(tpl.rep):
            for tid in list(self._by_block[key] or ()):
                other = self._templates.get(tid)
                if other is None or other is tpl or \
                        (other.rep ^ tpl.rep).bit_count() > self.max_distance:
                    continue
                keep, drop = (tpl, other) if (tpl.count, -tpl.tid) >= (other.count, -other.tid) \
                    else (other, tpl)
                self._unindex(drop)
                keep.count += drop.count
                keep.last_t = max(keep.last_t, drop.last_t)
                keep.owners |= drop.owners
                keep.accounts |= drop.accounts
                if fresh and drop is tpl:
                    # nobody holds the new id: forget it (no alias)
                    del self._templates[drop.tid]
                    return keep
                # old ids resolve to the survivor (all of a template's ids expire together)
                moved = [drop.tid] + drop.aliases if drop.aliases else [drop.tid]
                for alias in moved:
                    self._templates[alias] = keep
                keep.aliases = keep.aliases + moved if keep.aliases else moved
                drop.aliases = None
                return keep
        return tpl

    def _index(self, tpl: _Template) -> None:
        by_block = self._by_block
        for key in _block_keys(tpl.rep):
            tids = by_block[key]
            if tids is None:
                by_block[key] = [tpl.tid]
                self._has_block[key] = 1
            elif tpl.tid not in tids:
                tids.append(tpl.tid)

    def _unindex(self, tpl: _Template) -> None:
        by_block = self._by_block
        for key in _block_keys(tpl.rep):
            tids = by_block[key]
            if tids is not None and tpl.tid in tids:
                tids.remove(tpl.tid)
                if not tids:
                    by_block[key] = None
                    self._has_block[key] = 0

    def _promote(self, slot: tuple[str, str] | str, first: int, simhash: int, owner: str,
                 account: str, t: float) -> int:
        if type(slot) is str:
            first_owner = first_account = slot
        else:
            first_owner, first_account = slot[0], slot[1]
        singletons = self._singletons
        for key in _block_keys(first):
            if singletons[key] is slot:
                singletons[key] = None
        tid = self._next_tid
        self._next_tid += 1
        tpl = _Template(tid, first, t)
        self._templates[tid] = tpl
        self._index(tpl)
        self._observe(tpl, first, first_owner, first_account, t)
        self._observe(tpl, simhash, owner, account, t)
        return self._merge_near(tpl, fresh=True).tid

    # -- housekeeping ------------------------------------------------------
    def expire(self, before: float) -> int:
        """Forget templates not seen since ``before`` (event time); return how many."""
        stale = [tid for tid, tpl in self._templates.items() if tpl.last_t < before]
        for tid in stale:
            tpl = self._templates.pop(tid)
            if tpl.tid == tid:
                self._unindex(tpl)
        return len(stale)

    def retain(self, owner_of: Callable[[str], str | None]) -> int:
        """Keep only the users that are still tracked; return how many accounts were dropped.

        ``owner_of(account)`` gives the owner of a tracked account and None for
        one that is gone (evicted). A template that loses accounts gets its
        owners recomputed from the accounts it keeps.
        """
        dropped = 0
        for tpl in {id(tpl): tpl for tpl in self._templates.values()}.values():
            accounts = tpl.accounts
            gone = [a for a in accounts if owner_of(a) is None]
            if gone:
                dropped += len(gone)
                accounts.difference_update(gone)
                owners = set()
                for a in accounts:
                    owner = owner_of(a)
                    if owner is not None:
                        owners.add(owner)
                tpl.owners = owners
        return dropped

    def forget_aliases(self, held: Container[int]) -> int:
        """Forget the merged ids not in ``held`` (the ids still in use); return how many."""
        templates = self._templates
        dropped = 0
        for tpl in {id(tpl): tpl for tpl in templates.values() if tpl.aliases}.values():
            aliases = tpl.aliases
            assert aliases is not None
            kept = [a for a in aliases if a in held]
            if len(kept) < len(aliases):
                for alias in aliases:
                    if alias not in held:
                        del templates[alias]
                dropped += len(aliases) - len(kept)
                tpl.aliases = kept or None
        return dropped

    def __len__(self) -> int:
        return len({id(tpl) for tpl in self._templates.values()})


def _restore_index(state: tuple) -> TemplateIndex:
    index = TemplateIndex.__new__(TemplateIndex)
    (index.max_distance, index.max_owners, index._templates, index._by_block, index._has_block,
     index._singletons, index._single_hash, index._next_tid) = state
    index._views()
    return index


_TEMPLATE_FIELDS = _Template.__slots__


def _restore_template(values: tuple) -> _Template:
    return restore_fields(_Template, _TEMPLATE_FIELDS, values)
