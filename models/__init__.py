"""extraction-watch's detection core: pure Python, no Kafka, no clock.

The protocol, stated once: every score in this package lies in [0, 1] and a
high score is indicative of extraction. Event time comes from the events, so
the same input always gives the same alerts. This package imports only the
standard library, River and orjson (a test keeps it that way).

Data flows one way: :func:`models.contract.decode_api_call` validates a raw
event, :class:`models.engine.Engine` folds it into per-account, per-template
and per-payment state, scores accounts (:mod:`models.account_score`,
:mod:`models.cohort`), links suspects (:mod:`models.linking`), scores
clusters (:mod:`models.cluster_score`), watches pivots (:mod:`models.pivot`)
and emits alert v1 records (:mod:`models.alerts`) explained by
:mod:`models.evidence`. Egress networks and payment methods keep their own
aggregates (:mod:`models.aggregate`).
"""

from models import _native

# compiled builds of the hot modules, when built and current (see models/_native.py)
_native.activate(__path__)

from models.contract import ContractError  # noqa: E402, decode_api_call, decode_model_release
from models.engine import DETECTOR_VERSION, Engine, EngineConfig  # noqa: E402

__all__ = [
    "ContractError",
    "DETECTOR_VERSION",
    "Engine",
    "EngineConfig",
    "decode_api_call",
    "decode_model_release",
]
