"""One account's state as the engine folds and sweeps it, and its stored form (a table row, a checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import zstandard

from detectors.answers import AnswerBook
from detectors.monitor import AccountDetectorState
from detectors.windows import AccountWindow, WindowConfig
from streams.events import EVENT_TYPES

STATE_VERSION = 1
# A zstd dictionary trained on stored states of our generators (benchmarks/train_state_dictionary.py): a row
# repeats the same keys and shapes, which zstd cannot learn from one small row; with it rows are about a
# third smaller. Frames name their dictionary, and rows written before it (none) still decode.
DICTIONARY_PATH = Path(__file__).with_name("state.zdict")
_DICTIONARY = zstandard.ZstdCompressionDict(DICTIONARY_PATH.read_bytes())
# Level 1: compressing a ~2 KB state costs ~10 µs; higher levels buy little on such small values.
_COMPRESSOR = zstandard.ZstdCompressor(level=1, dict_data=_DICTIONARY)
_DECOMPRESSOR = zstandard.ZstdDecompressor(dict_data=_DICTIONARY)


@dataclass(slots=True)
class AccountState:
    """What a table row holds for one account: its window, detector state, applied offsets and answers.

    ``detector`` is the stored form of the detector state, kept encoded (:func:`encode_detector`: the
    orjson bytes of its ``to_state()``, embedded as they are in the row's JSON); ``live_detector`` the decoded
    object while this state stays in memory (a sweep writes the stored form back when the object changed).
    Encoded, the stored form takes about a sixth of the memory of the nested lists and floats it was kept as
    before, and comparing it is one ``bytes`` comparison (docs/performance.md, "Resident state").
    """

    window: AccountWindow
    partition: int
    applied_offsets: list[int] = field(default_factory=lambda: [-1] * len(EVENT_TYPES))
    detector: bytes | None = None
    live_detector: AccountDetectorState | None = field(default=None, compare=False, repr=False)
    answers: AnswerBook | None = field(default=None, compare=False)  # answers to its alerts (issue 18)
    # Holdout uplift (issue 18, streams/engine/uplift.py): [first alert's time, held out (0/1), status].
    uplift: list[int] | None = None

    def to_bytes(self) -> bytes:
        """The partition (2 bytes, readable without decoding), then the JSON body, zstd-compressed with the
        states' dictionary.

        Compression keeps about a fifth of the JSON, so changelogs and recovery shrink alike.
        """
        return self.partition.to_bytes(2, "big") + _COMPRESSOR.compress(self.json_body())

    def json_body(self) -> bytes:
        """The stored form before compression."""
        body: dict[str, Any] = {
            "v": STATE_VERSION,
            "p": self.partition,
            "o": self.applied_offsets,
            "w": self.window.to_state(),
            "d": orjson.Fragment(self.detector) if self.detector is not None else None,
            "a": self.answers.to_state() if self.answers is not None else None,
        }
        if self.uplift is not None:  # only accounts alerted while a holdout runs
            body["u"] = self.uplift
        return orjson.dumps(body)

    @staticmethod
    def partition_of(raw: bytes) -> int:
        """The partition of a stored state, without decoding it."""
        return int.from_bytes(raw[:2], "big")

    @classmethod
    def from_bytes(cls, raw: bytes, config: WindowConfig) -> AccountState:
        body = orjson.loads(_DECOMPRESSOR.decompress(raw[2:]))
        answers = AnswerBook.from_state(body["a"]) if body.get("a") is not None else None
        window = AccountWindow.from_state(body["w"], config)
        uplift = list(body["u"]) if body.get("u") else None
        detector = body.get("d")
        stored = encode_detector(detector) if detector is not None else None
        return cls(window, body["p"], list(body["o"]), stored, answers=answers, uplift=uplift)


def encode_detector(state: dict[str, Any]) -> bytes:
    """The stored form of a detector state (``AccountDetectorState.to_state()``): its orjson bytes.

    Re-encoding what a row's JSON decoded to gives the same bytes orjson wrote (compact, keys in order,
    floats as the shortest text that reads back the same), so a state that did not change compares equal.
    The bytes are copied: what ``orjson.dumps`` returns keeps its whole output buffer allocated (8-16 KB
    under ``tracemalloc`` for a state of ~700 bytes), which this form stays in memory to save.
    """
    return bytes(memoryview(orjson.dumps(state)))


def decode_detector(stored: bytes) -> dict[str, Any]:
    """The detector state :func:`encode_detector` encoded."""
    state: dict[str, Any] = orjson.loads(stored)
    return state
