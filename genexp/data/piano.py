"""Piano rolls: 88-key binary frames (MIDI notes 21..108, A0..C8), one frame per quarter note.

- `encode_score`: a music21 score -> uint8 [T, 88]. Frame t is what sounds at the onset of quarter t
  (offset t, in quarter notes from the start), as the JSB Chorales set of Boulanger-Lewandowski et al.
  (2012) samples its chorales: a note from offset a to b (a + its length) is on in every frame t with
  a <= t < b. Ties are merged first (music21 `stripTies`), so a tied note is one held note; a binary roll
  cannot tell a held note from a repeated one (JSB's rolls cannot either). Rests and silences are empty
  frames, kept. A note shorter than a quarter that sounds at no quarter onset (an eighth on the
  off-beat, a passing note) is not in the roll; grace notes (no length) neither.
- `decode_roll`: the inverse: each run of consecutive on-frames of a key is one note (so
  encode(decode(r)) == r); `write_midi` writes it as a MIDI file (music21), atomically.
- `read_pickle`: the published JSB / Nottingham / MuseData / Piano-midi.de pickles, a dict
  {"train", "valid", "test"} of lists of pieces, each a list of time steps, each the sequence of
  active MIDI notes; read with an unpickler that builds only Python's plain containers and numbers.
- `bach_corpus`: music21's Bach chorales (`bach/bwv*.mxl`), each four-part (SATB) score encoded.

music21 is imported only when a score is read or written: one line names the package when it is missing.
"""

from __future__ import annotations

import io
import logging
import math
import os
import pickle
from pathlib import Path

import numpy as np

from genexp import GenexpError
from genexp.ckpt import atomic_write

log = logging.getLogger(__name__)

LOWEST, N_KEYS = 21, 88  # MIDI 21 (A0) .. 108 (C8): the piano's 88 keys
SPLITS = ("train", "valid", "test")  # the published pickles' keys
MUSIC21 = "music21==10.5.1"


def music21():
    """The music21 package, or one GenexpError line saying how to get it."""
    try:
        import music21 as m21
    except ImportError as e:
        raise GenexpError(f"piano rolls from scores need the music21 package ({e}): pip install {MUSIC21}") from None
    return m21


def key_of(midi: int, where: str) -> int:
    if not LOWEST <= midi < LOWEST + N_KEYS:
        raise GenexpError(f"{where}: MIDI note {midi} is outside the piano's {LOWEST}..{LOWEST + N_KEYS - 1}")
    return midi - LOWEST


def encode_score(score, where: str = "score") -> np.ndarray:
    """uint8 [T, 88], T = ceil(length in quarter notes): see the module docstring for ties and rests."""
    merged = score.stripTies(inPlace=False)  # a tied chain becomes one note with the chain's length
    n_frames = math.ceil(merged.highestTime)
    roll = np.zeros((n_frames, N_KEYS), np.uint8)
    for el in merged.flatten().notes:  # Notes and Chords of every part; offsets from the score's start
        start, end = el.offset, el.offset + el.quarterLength
        first, stop = math.ceil(start), math.ceil(end)  # frames t with start <= t < end
        for p in el.pitches:
            roll[first:stop, key_of(p.midi, where)] = 1
    return roll


def decode_roll(roll: np.ndarray):
    """A music21 Stream with one Note per run of on-frames of a key (frame = a quarter note), and a rest
    as long as the roll under them (so trailing empty frames keep the roll's length)."""
    m21 = music21()
    roll = np.asarray(roll) > 0
    stream = m21.stream.Stream()
    stream.insert(0.0, m21.note.Rest(quarterLength=float(len(roll))))
    for key in range(roll.shape[1]):
        on = np.flatnonzero(np.diff(np.r_[0, roll[:, key].astype(np.int8), 0]))  # run starts and ends
        for start, stop in zip(on[::2], on[1::2], strict=True):
            stream.insert(float(start), m21.note.Note(midi=LOWEST + key, quarterLength=float(stop - start)))
    return stream


def write_midi(roll: np.ndarray, path: str | os.PathLike, bpm: float = 80.0) -> Path:
    """A roll as a MIDI file (a quarter note per frame at `bpm`), written atomically."""
    m21 = music21()
    stream = decode_roll(roll)
    stream.insert(0, m21.tempo.MetronomeMark(number=bpm))
    data = m21.midi.translate.streamToMidiFile(stream).writestr()
    return atomic_write(path, lambda f: f.write(data))


# ---- the published pickles -------------------------------------------------------------------------------
class _PlainUnpickler(pickle.Unpickler):
    """Builds lists, tuples, dicts, sets, strings and numbers only: a pickle naming any class or function
    (which could run code) is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"it names {module}.{name}; only plain lists, tuples and numbers are read")


def read_pickle(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """{"train", "valid", "test"} -> lists of uint8 rolls [T, 88] from a JSB-format pickle."""
    path = Path(path).expanduser()
    where = f"data.path={str(path)!r}"
    try:
        raw = path.read_bytes()
        data = _PlainUnpickler(io.BytesIO(raw), encoding="latin1").load()  # latin1: Python 2 pickles
    except OSError as e:
        raise GenexpError(f"{where}: cannot read it ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - any malformed pickle: one line
        raise GenexpError(f"{where}: not a JSB-format pickle ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or not all(k in data for k in SPLITS):
        keys = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise GenexpError(f"{where}: must be a dict with keys train, valid, test (lists of pieces), got {keys}")
    out = {}
    for split in SPLITS:
        pieces = data[split]
        if not isinstance(pieces, (list, tuple)) or not pieces:
            raise GenexpError(f"{where}: {split} must be a non-empty list of pieces")
        out[split] = [_roll_of(piece, f"{where}: {split}[{i}]") for i, piece in enumerate(pieces)]
    return out


def _roll_of(piece, where: str) -> np.ndarray:
    if not isinstance(piece, (list, tuple)) or not piece:
        raise GenexpError(f"{where}: a piece must be a non-empty list of time steps")
    roll = np.zeros((len(piece), N_KEYS), np.uint8)
    for t, step in enumerate(piece):
        if not isinstance(step, (list, tuple, set, frozenset)):
            raise GenexpError(f"{where}[{t}]: a time step must be a list of MIDI notes, got {type(step).__name__}")
        for note in step:
            if isinstance(note, bool) or not isinstance(note, (int, float)) or note != int(note):
                raise GenexpError(f"{where}[{t}]: {note!r} is not a MIDI note number")
            roll[t, key_of(int(note), f"{where}[{t}]")] = 1
    return roll


def to_steps(roll: np.ndarray) -> list[tuple[int, ...]]:
    """A roll in the pickles' form: per time step, the tuple of active MIDI notes."""
    return [tuple(int(k) + LOWEST for k in np.flatnonzero(frame)) for frame in np.asarray(roll)]


# ---- music21's Bach chorales -----------------------------------------------------------------------------
def bach_corpus() -> tuple[list[str], list[np.ndarray]]:
    """(names, rolls) of music21's four-part Bach chorales (`bach/bwv*.mxl`; scores with other than four
    parts, i.e. with instruments, are left out), sorted by name; identical rolls kept once. Minutes."""
    m21 = music21()
    try:
        paths = sorted(p for p in m21.corpus.getComposer("bach") if Path(str(p)).suffix == ".mxl")
    except Exception as e:  # noqa: BLE001 - a broken corpus install
        raise GenexpError(f"music21's corpus cannot be listed ({type(e).__name__}: {e}): reinstall {MUSIC21}") from None
    if not paths:
        raise GenexpError(f"music21's corpus has no Bach chorales (bach/bwv*.mxl): reinstall {MUSIC21}")
    names, rolls, seen = [], [], set()
    for i, path in enumerate(paths):
        score = m21.corpus.parse(path)
        if len(score.parts) != 4:
            continue
        roll = encode_score(score, Path(str(path)).name)
        if roll.tobytes() in seen or not roll.any():
            continue
        seen.add(roll.tobytes())
        names.append(Path(str(path)).stem)
        rolls.append(roll)
        if (i + 1) % 50 == 0:
            log.info("bach_chorales: %d of %d scores read", i + 1, len(paths))
    return names, rolls
