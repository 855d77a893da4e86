"""espeak-ng synthesis with phoneme timings, through the library's C API (ctypes).

The ``espeak-ng`` command line gives phoneme names (``-x``) but no durations (``--pho`` works
only with MBROLA voices), so we call ``libespeak-ng`` directly: with
``espeakINITIALIZE_PHONEME_EVENTS`` the synthesis callback receives one event per phoneme with
its start sample, and the phoneme lasts until the next event. Symbols are espeak-ng's own
phoneme mnemonics (phone set ``"espeak"``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import re
import threading

logger = logging.getLogger(__name__)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EVENT_LIST_TERMINATED = 0
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
_MARKER = re.compile(r"^\(.*\)$")  # language-switch markers such as "(en)", not sounds


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class EspeakSynth:
    """One per process (the C library keeps global state); not thread-safe, hence the lock."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self._lib = ctypes.CDLL(path)
        except OSError as e:
            raise RuntimeError(
                f"cannot load libespeak-ng ({e}); install it with: apt-get install espeak-ng"
            ) from e
        self.sample_rate = int(
            self._lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS,
                0,
                None,
                _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT,
            )
        )
        if self.sample_rate <= 0:
            raise RuntimeError("espeak_Initialize failed: is espeak-ng-data installed?")
        self._chunks: list[bytes] = []
        self._events: list[tuple[str, int]] = []
        self._end_sample = 0
        self._callback = _Callback(self._on_audio)  # keep a reference: C holds only a pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]

    def _on_audio(self, wav, num_samples, events) -> int:  # type: ignore[no-untyped-def]
        if num_samples > 0:
            self._chunks.append(ctypes.string_at(wav, num_samples * 2))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                self._events.append((event.id.string.decode("utf-8", "replace"), event.sample))
            elif event.type in (_EVENT_END, _EVENT_MSG_TERMINATED):
                self._end_sample = max(self._end_sample, event.sample)
            i += 1
        return 0

    def synthesize(
        self, text: str, voice: str, *, rate: int, pitch: int
    ) -> tuple[bytes, list[tuple[str, float, float]]]:
        """Speak ``text``; return 16-bit mono PCM bytes and ``[(phone, start_s, end_s), ...]``."""
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}; see `espeak-ng --voices`")
            self._lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
            self._lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
            self._chunks, self._events, self._end_sample = [], [], 0
            data = text.encode("utf-8")
            status = self._lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            if status != 0:
                raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}")
            self._lib.espeak_Synchronize()
            pcm = b"".join(self._chunks)
            events = list(self._events)
        total = len(pcm) // 2
        phones: list[tuple[str, float, float]] = []
        kept = [(sym, sample) for sym, sample in events if not _MARKER.match(sym)]
        for j, (sym, sample) in enumerate(kept):
            end = kept[j + 1][1] if j + 1 < len(kept) else total
            phones.append((sym, sample / self.sample_rate, end / self.sample_rate))
        return pcm, phones


_SYNTH: EspeakSynth | None = None


def espeak_synth() -> EspeakSynth:
    """The process-wide espeak-ng synthesiser (created on first use)."""
    global _SYNTH
    if _SYNTH is None:
        _SYNTH = EspeakSynth()
    return _SYNTH
