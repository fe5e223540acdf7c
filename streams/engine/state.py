"""One account's state as the engine folds and sweeps it, and its stored form (a table row, a checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
import zstandard

from detectors.answers import AnswerBook
from detectors.monitor import AccountDetectorState
from detectors.windows import AccountWindow, WindowConfig
from streams.events import EVENT_TYPES

STATE_VERSION = 2
# A row: the partition (2 bytes), then either one zstd frame of the whole body (version 1, still read) or
# ROW_PARTS, the closed part's length (4 bytes) and two frames: the closed part (the window's closed days and
# the detector's stored form, which change once a day) and the rest. A checkpoint copies the closed frame of
# the row it replaces while that part has not changed, so writing an old account costs its open days only.
ROW_PARTS = 2
_HEADER = 7  # partition, ROW_PARTS, closed frame's length
# Below about this many bytes of JSON in the closed part (a young account's few closed days and small detector
# state, a closed day's slot taken as DAY_BYTES), two frames cost more to write than one, copy or not
# (benchmarks/state_encode.py, docs/performance.md): such rows stay one frame, written as before.
ONE_FRAME_BELOW = 1024
DAY_BYTES = 20
# A zstd dictionary trained on stored states of our generators (benchmarks/train_state_dictionary.py): a row
# repeats the same keys and shapes, which zstd cannot learn from one small row; with it rows are about a
# third smaller. Frames name their dictionary, and rows written before it (none) still decode.
DICTIONARY_PATH = Path(__file__).with_name("state.zdict")
_DICTIONARY = zstandard.ZstdCompressionDict(DICTIONARY_PATH.read_bytes())
# Level 1: compressing a ~2 KB state costs ~10 µs; higher levels buy little on such small values.
_COMPRESSOR = zstandard.ZstdCompressor(level=1, dict_data=_DICTIONARY)
_DECOMPRESSOR = zstandard.ZstdDecompressor(dict_data=_DICTIONARY)
_PARTS_MARK = bytes([ROW_PARTS])
_ONE_FRAME = bytes(bytearray(b"one frame"))  # a written detector state no state holds (see mark_written)


class RowForm(StrEnum):
    """How a checkpoint wrote a row (``churnwatch_state_rows_written_total``'s ``form``)."""

    ONE_FRAME = "one_frame"  # a young account's row, or any with CHURNWATCH_STATE_ROWS_IN_PARTS=false
    TWO_FRAMES = "two_frames"  # both frames encoded
    CLOSED_COPIED = "closed_copied"  # the closed frame copied from the row it replaces

    @classmethod
    def of(cls, row: bytes) -> RowForm:
        """The form of a row written without copying."""
        return cls.TWO_FRAMES if row[2] == ROW_PARTS else cls.ONE_FRAME


@dataclass(slots=True)
class AccountState:
    """What a table row holds for one account: its window, detector state, applied offsets and answers.

    ``detector`` is the stored form of the detector state, kept encoded (:func:`encode_detector`: the
    orjson bytes of its ``to_state()``, compressed; the row embeds the JSON); ``live_detector`` the decoded
    object while this state stays in memory (a sweep writes the stored form back when the object changed), or
    only while a sweep or an answer needs it (``Detection(keep_decoded=False)``, the wall clock's default).
    Encoded, the stored form takes about a fifteenth of the memory of the nested lists and floats it was kept
    as before, and comparing it is one ``bytes`` comparison (docs/performance.md, "Resident state").
    """

    window: AccountWindow
    partition: int
    applied_offsets: list[int] = field(default_factory=lambda: [-1] * len(EVENT_TYPES))
    detector: bytes | None = None
    live_detector: AccountDetectorState | None = field(default=None, compare=False, repr=False)
    answers: AnswerBook | None = field(default=None, compare=False)  # answers to its alerts (issue 18)
    # Holdout uplift (issue 18, streams/engine/uplift.py): [first alert's time, held out (0/1), status].
    uplift: list[int] | None = None
    # The detector's stored form as the last row read or written held it (:meth:`closed_unchanged`).
    written_detector: bytes | None = field(default=None, compare=False, repr=False)
    # The cancellation its detector state had assessed when the decoded state was dropped (streams.engine.
    # detection.due): a cancelled account no longer keeps its decoded state (~3 KB) to tell that.
    assessed_cancel_ms: int | None = field(default=None, compare=False, repr=False)

    def to_bytes(self, previous: bytes | None = None, *, parts: bool = True) -> bytes:
        """The partition (2 bytes, readable without decoding), then the state as JSON zstd-compressed with the
        states' dictionary (compression keeps about a fifth of the JSON): in two frames, the closed part and
        the rest, or in one (version 1) while the closed part is under :data:`ONE_FRAME_BELOW` bytes.

        ``previous``: the row this state was last read from or written as (:meth:`mark_written`); its closed
        frame is copied when neither the closed days nor the detector state changed since. ``parts=False``:
        one frame whatever the size (what workers from before two frames can read).
        """
        prefix = self.partition.to_bytes(2, "big")
        if self.copies_closed(previous, parts):
            assert previous is not None
            closed = previous[_HEADER : _HEADER + int.from_bytes(previous[3:_HEADER], "big")]
        else:
            window = self.window
            stored = zstandard.frame_content_size(self.detector) if self.detector is not None else 0
            if (  # the second test alone decides for a young account (few days of any kind)
                not parts
                or stored + DAY_BYTES * len(window.days.slots) < ONE_FRAME_BELOW
                or stored + DAY_BYTES * window.closed_slots() < ONE_FRAME_BELOW
            ):
                return prefix + _COMPRESSOR.compress(self._body(1, window.to_state(), self._detector_json()))
            closed = _COMPRESSOR.compress(self.closed_body())
        whole = (
            prefix,
            _PARTS_MARK,
            len(closed).to_bytes(4, "big"),
            closed,
            _COMPRESSOR.compress(self.open_body()),
        )
        return b"".join(whole)

    def copies_closed(self, previous: bytes | None, parts: bool = True) -> bool:
        """Whether :meth:`to_bytes` with these arguments copies ``previous``'s closed frame."""
        return parts and previous is not None and previous[2] == ROW_PARTS and self.closed_unchanged()

    def closed_unchanged(self) -> bool:
        """Whether the row :meth:`mark_written` saw last has a closed frame, and this state's closed part is
        still what it holds."""
        return not self.window.closed_changed and self.written_detector is self.detector

    def mark_written(self, row: bytes) -> None:
        """``row`` was just read or written for this state (see :meth:`to_bytes`)."""
        self.window.closed_changed = False
        # A row of one frame has nothing to copy: no detector state is this object (so no look-up of the row).
        self.written_detector = self.detector if row[2] == ROW_PARTS else _ONE_FRAME

    def _detector_json(self) -> orjson.Fragment | None:
        """The detector's stored form as the row's JSON embeds it."""
        return orjson.Fragment(detector_json(self.detector)) if self.detector is not None else None

    def closed_body(self) -> bytes:
        """The closed part before compression: the window's closed days and the detector's stored form."""
        detector = self._detector_json()
        return orjson.dumps({"d": self.window.closed_state(), "x": detector})

    def open_body(self) -> bytes:
        """The rest before compression."""
        return self._body(STATE_VERSION, self.window.open_state(), None)

    def _body(self, version: int, window: dict[str, Any], detector: orjson.Fragment | None) -> bytes:
        body: dict[str, Any] = {"v": version, "p": self.partition, "o": self.applied_offsets, "w": window}
        if version == 1:
            body["d"] = detector
        body["a"] = self.answers.to_state() if self.answers is not None else None
        if self.uplift is not None:  # only accounts alerted while a holdout runs
            body["u"] = self.uplift
        return orjson.dumps(body)

    @staticmethod
    def partition_of(raw: bytes) -> int:
        """The partition of a stored state, without decoding it."""
        return int.from_bytes(raw[:2], "big")

    @classmethod
    def from_bytes(cls, raw: bytes, config: WindowConfig) -> AccountState:
        """The state of a row of either version (:meth:`mark_written` with it)."""
        if raw[2] == ROW_PARTS:
            end = _HEADER + int.from_bytes(raw[3:_HEADER], "big")
            closed = orjson.loads(_DECOMPRESSOR.decompress(raw[_HEADER:end]))
            body = orjson.loads(_DECOMPRESSOR.decompress(raw[end:]))
            window = AccountWindow.from_parts(closed["d"], body["w"], config)
            detector = closed["x"]
        else:  # version 1: one frame (a zstd frame's first byte is 0x28)
            body = orjson.loads(_DECOMPRESSOR.decompress(raw[2:]))
            window = AccountWindow.from_state(body["w"], config)
            detector = body.get("d")
        answers = AnswerBook.from_state(body["a"]) if body.get("a") is not None else None
        uplift = list(body["u"]) if body.get("u") else None
        stored = encode_detector(detector) if detector is not None else None
        state = cls(window, body["p"], list(body["o"]), stored, answers=answers, uplift=uplift)
        state.mark_written(raw)
        return state


def encode_detector(state: dict[str, Any]) -> bytes:
    """The stored form of a detector state (``AccountDetectorState.to_state()``): its orjson bytes, compressed
    with the states' dictionary (:func:`detector_json` gives the JSON back).

    Re-encoding what a row's JSON decoded to gives the same bytes orjson wrote (compact, keys in order,
    floats as the shortest text that reads back the same), and compressing the same bytes gives the same
    frame, so a state that did not change compares equal. Compressed, it takes about two fifths of the JSON's
    memory (~290 of ~760 bytes after 90 days; docs/performance.md, "The detector's stored form compressed").
    The frame is copied: what ``compress`` returns keeps the whole bound it allocated (~800 bytes under
    ``tracemalloc`` for a frame of ~300), which this form stays in memory to save.
    """
    return bytes(memoryview(_COMPRESSOR.compress(orjson.dumps(state))))


def detector_json(stored: bytes) -> bytes:
    """The JSON of a stored detector form (:func:`encode_detector`), as a row embeds it."""
    return _DECOMPRESSOR.decompress(stored)


def decode_detector(stored: bytes) -> dict[str, Any]:
    """The detector state :func:`encode_detector` encoded."""
    state: dict[str, Any] = orjson.loads(detector_json(stored))
    return state
