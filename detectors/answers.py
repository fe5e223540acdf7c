"""What one account's answers to its alerts taught its detector (issue 18): muted and damped reason kinds.

An :class:`AnswerBook` lives beside an account's detector state. It remembers the last few alerts the
account raised (their reason kinds and the risk features behind them), so an answer that names only an
alert id can be read back to what the alert said, and it keeps:

* **muted kinds**: a *false alarm* mutes the alert's reason kinds for ``suppress_days``: their features
  weigh nothing in the account's risk, so they neither raise risk nor appear as reasons. Other reasons
  still alert.
* **damped kinds**: the same answer teaches the account that the pattern is normal for it: after the mute
  ends, the kind's features are multiplied by ``1 - d``, where ``d`` (``damping`` per false alarm,
  combined as independent evidence) decays with ``damping_half_life_days``. A kind damped under
  ``MIN_DAMPING`` is forgotten.
* **seen answers**: the last ``MAX_SEEN`` answer ids (as 32-bit hashes), so the same answer counts once.

Everything is bounded: at most ``MAX_ALERTS`` alerts, ``MAX_SEEN`` ids and one entry per reason kind.
The book knows nothing of topics or labels' transport; the engine maps each answer to one call.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from detectors.account_state import AccountDetectorState
from detectors.reasons import reason_kind
from detectors.risk import FEATURE_INDEX, FEATURES
from detectors.shared import shared_float

DAY_MS = 86_400_000
MAX_ALERTS = 4
MAX_SEEN = 16
MIN_DAMPING = 0.05
# Reason kinds whose sentence covers several features; every other kind is the feature of its name.
_KIND_FEATURES: dict[str, tuple[str, ...]] = {"tickets": ("ticket_burst", "urgent")}


def features_of(kind: str) -> tuple[str, ...]:
    """The risk features a reason kind speaks for (none for ``base_rate``, ``canceled``, ``other``).

    >>> features_of("tickets"), features_of("silence"), features_of("base_rate")
    (('ticket_burst', 'urgent'), ('silence',), ())
    """
    if kind in _KIND_FEATURES:
        return _KIND_FEATURES[kind]
    return (kind,) if kind in FEATURE_INDEX else ()


@dataclass(frozen=True, slots=True)
class AnswerPolicy:
    """How answers act: mute length, damping per false alarm and its half-life, weight as a risk label, and
    how many pseudo-answers a plan's own answers must outweigh before they damp a reason for the whole plan
    (:mod:`detectors.answer_segments`; 0: answers teach nothing beyond the accounts answered)."""

    suppress_days: float = 30.0
    damping: float = 0.8
    damping_half_life_days: float = 365.0
    label_weight: float = 1.0
    segment_prior_answers: float = 10.0


@dataclass(frozen=True, slots=True)
class AnsweredAlert:
    """A remembered alert: its id, when it was raised, its reason kinds and the features it was scored on.

    ``flat`` holds the features as ``(feature index, value, index, value, ...)`` at 3 decimals (zeros left
    out), with the kinds' names and the values shared between accounts (:func:`sys.intern`,
    :func:`~detectors.shared.shared_float`), as a pending :class:`~detectors.account_state.Snapshot` holds
    its own: every alerted account keeps up to ``MAX_ALERTS`` of them in memory (issue 15), and a dict of
    features with its floats took ~600 of an alert's ~1,000 bytes. :attr:`features` reads them back.

    >>> alert = AnsweredAlert.of("acme:0:opened", 0, ["silence"], {"silence": 1.23456, "urgent": 0.0})
    >>> alert.flat, alert.features
    ((6, 1.235), {'silence': 1.235})
    """

    alert_id: str
    ts_ms: int
    kinds: tuple[str, ...]
    flat: tuple[Any, ...]

    @classmethod
    def of(
        cls, alert_id: str, ts_ms: int, kinds: Iterable[str], features: Mapping[str, float]
    ) -> AnsweredAlert:
        """An alert scored on ``features`` (each non-zero one kept, rounded to 3 decimals)."""
        flat: list[Any] = []
        for name, value in features.items():
            if value:
                flat += (FEATURE_INDEX[name], shared_float(round(value, 3)))
        return cls(alert_id, ts_ms, tuple([sys.intern(kind) for kind in kinds]), tuple(flat))

    @property
    def features(self) -> dict[str, float]:
        """The features the alert was scored on, by name."""
        flat = self.flat
        return {FEATURES[flat[i]]: flat[i + 1] for i in range(0, len(flat), 2)}


class AnswerBook:
    """One account's answers: remembered alerts, seen answer ids, muted and damped reason kinds.

    Examples
    --------
    >>> book = AnswerBook()
    >>> book.remember("acme:0:opened", 0, ["usage -60% vs its usual level (...)"], {"usage_drop": 0.6})
    >>> book.first_time("acme:0:opened|false-alarm|ana"), book.first_time("acme:0:opened|false-alarm|ana")
    (True, False)
    >>> alert = book.alert("acme:0:opened")
    >>> book.false_alarm(alert, now_ms=10 * DAY_MS, policy=AnswerPolicy())
    >>> book.weights(20 * DAY_MS)  # muted for 30 days from the answer
    {'usage_drop': 0.0}
    >>> book.weights(40 * DAY_MS)  # then damped: 1 - 0.8 * 0.5 ** (30 / 365), a year's half-life
    {'usage_drop': 0.2443}
    >>> AnswerBook.from_state(book.to_state()).to_state() == book.to_state()
    True
    """

    __slots__ = ("alerts", "damped", "muted", "seen")

    def __init__(self) -> None:
        self.alerts: list[AnsweredAlert] = []
        self.seen = array("I")  # 4 bytes an id (a list held a 32-byte int object for each)
        self.muted: dict[str, int] = {}  # kind -> muted until (ms)
        self.damped: dict[str, tuple[float, int]] = {}  # kind -> (damping, since ms)

    def remember(
        self, alert_id: str, ts_ms: int, reasons: Iterable[str], features: Mapping[str, float]
    ) -> None:
        """Keep an alert that may be answered (the latest ``MAX_ALERTS``; the same id again replaces it)."""
        kinds = dict.fromkeys(reason_kind(reason) for reason in reasons)
        kept = [a for a in self.alerts if a.alert_id != alert_id]
        self.alerts = [*kept, AnsweredAlert.of(alert_id, ts_ms, kinds, features)][-MAX_ALERTS:]

    def alert(self, alert_id: str) -> AnsweredAlert | None:
        return next((a for a in self.alerts if a.alert_id == alert_id), None)

    def first_time(self, answer_id: str) -> bool:
        """Record an answer id; False when it was seen already (the same answer twice counts once)."""
        digest = zlib.crc32(answer_id.encode())
        seen = self.seen
        if digest in seen:
            return False
        seen.append(digest)
        if len(seen) > MAX_SEEN:
            del seen[0]
        return True

    def false_alarm(self, alert: AnsweredAlert, *, now_ms: int, policy: AnswerPolicy) -> None:
        """Mute the alert's reason kinds for ``suppress_days`` and damp them for the account."""
        self._forget_faded(now_ms, policy)
        until = now_ms + round(policy.suppress_days * DAY_MS)
        for kind in alert.kinds:
            if not features_of(kind):
                continue
            self.muted[kind] = max(self.muted.get(kind, 0), until)
            left = 1.0 - self._damping(kind, now_ms, policy)
            self.damped[kind] = (round(1.0 - left * (1.0 - policy.damping), 4), now_ms)

    def weights(self, now_ms: int, policy: AnswerPolicy | None = None) -> dict[str, float]:
        """Multipliers (< 1) of the features the answers muted or damped at ``now_ms``."""
        policy = policy if policy is not None else AnswerPolicy()
        out: dict[str, float] = {}
        for kind in {*self.muted, *self.damped}:
            if self.muted.get(kind, 0) > now_ms:
                weight = 0.0
            else:
                weight = round(1.0 - self._damping(kind, now_ms, policy), 4)
            if weight < 1.0:
                for name in features_of(kind):
                    out[name] = min(weight, out.get(name, 1.0))
        return out

    def _damping(self, kind: str, now_ms: int, policy: AnswerPolicy) -> float:
        entry = self.damped.get(kind)
        if entry is None:
            return 0.0
        damping, since = entry
        elapsed_days = max(0, now_ms - since) / DAY_MS
        return damping * 0.5 ** (elapsed_days / policy.damping_half_life_days)

    def _forget_faded(self, now_ms: int, policy: AnswerPolicy) -> None:
        self.muted = {k: until for k, until in self.muted.items() if until > now_ms}
        self.damped = {
            k: v for k, v in self.damped.items() if self._damping(k, now_ms, policy) >= MIN_DAMPING
        }

    def summary(self) -> dict[str, Any]:
        """What an account endpoint shows: alerts to answer, answers seen, muted and damped kinds."""
        return {
            "alerts": [a.alert_id for a in self.alerts],
            "answers_seen": len(self.seen),
            "muted_until_ms": dict(self.muted),
            "damping": {kind: {"damping": d, "since_ms": since} for kind, (d, since) in self.damped.items()},
        }

    def to_state(self) -> dict[str, Any]:
        """JSON-compatible state (features by index, as the monitor's snapshots)."""
        return {
            "a": [
                [
                    a.alert_id,
                    a.ts_ms,
                    list(a.kinds),
                    [list(a.flat[i : i + 2]) for i in range(0, len(a.flat), 2)],
                ]
                for a in self.alerts
            ],
            "s": self.seen.tolist(),
            "m": self.muted,
            "d": {k: list(v) for k, v in self.damped.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> AnswerBook:
        book = cls()
        book.alerts = [
            AnsweredAlert(
                alert_id,
                ts,
                tuple([sys.intern(kind) for kind in kinds]),
                tuple([x for i, v in pairs for x in (i, shared_float(v))]),
            )
            for alert_id, ts, kinds, pairs in state["a"]
        ]
        book.seen = array("I", state["s"])
        book.muted = {sys.intern(k): until for k, until in state["m"].items()}
        book.damped = {sys.intern(k): (float(d), int(since)) for k, (d, since) in state["d"].items()}
        return book


def close_episode(state: AccountDetectorState, episode_id: str, *, now_ms: int, cooldown_days: int) -> bool:
    """Close the account's open episode ``episode_id`` (an answer said action was taken): no episode, and
    the usual cooldown before a new one. False when that episode is not the open one.

    >>> from detectors.alerts import Severity
    >>> from detectors.config import DetectorConfig
    >>> from detectors.episode import Episode
    >>> state = AccountDetectorState(DetectorConfig())
    >>> state.episode = Episode("acme:0", 0, Severity.MEDIUM)
    >>> close_episode(state, "acme:1", now_ms=DAY_MS, cooldown_days=14), state.episode is None
    (False, False)
    >>> close_episode(state, "acme:0", now_ms=DAY_MS, cooldown_days=14), state.cooldown_until_ms // DAY_MS
    (True, 15)
    """
    episode = state.episode
    if episode is None or episode.episode_id != episode_id:
        return False
    state.episode = None
    state.cooldown_until_ms = max(state.cooldown_until_ms, now_ms + cooldown_days * DAY_MS)
    return True
