"""The RNN-RBM and its data: piano-roll encoding, the published pickle format, the corpus cache, the
model's maths against brute force. Fast tier: hand-made scores, tiny models; the real corpus is slow."""

from __future__ import annotations

import itertools
import math
import pickle
import sys

import numpy as np
import pytest
import torch

from genexp import GenexpError
from genexp.data import BachChoralesDataModule, FakeSequenceDataModule, piano, sequences
from genexp.metrics.sequence import bernoulli_loglik, bernoulli_marginals, frame_accuracy, frame_counts
from genexp.models.rbm import RBM
from genexp.models.rnnrbm import RNNRBM
from genexp.nn import ais
from tests.conftest import build_model, compose_config

music21 = pytest.importorskip("music21")


# ---- piano rolls ----------------------------------------------------------------------------------------
def _score():
    """Two bars of 4/4 in two parts. Soprano: C5 half tied to a quarter, an eighth rest + an eighth E5
    (off the beat: not in the roll), a quarter G5, then a quarter rest and a dotted half... Bass: a C3-G3
    chord for a whole note, then a whole rest."""
    from music21 import chord, note, stream, tie

    s, b = stream.Part(), stream.Part()
    c1, c2 = note.Note("C5", quarterLength=2), note.Note("C5", quarterLength=1)
    c1.tie, c2.tie = tie.Tie("start"), tie.Tie("stop")
    for n in (c1, c2, note.Rest(quarterLength=0.5), note.Note("E5", quarterLength=0.5)):
        s.append(n)
    for n in (note.Note("G5", quarterLength=1), note.Rest(quarterLength=1), note.Note("D5", quarterLength=2)):
        s.append(n)
    b.append(chord.Chord(["C3", "G3"], quarterLength=4))
    b.append(note.Rest(quarterLength=4))
    score = stream.Score()
    score.insert(0, s)
    score.insert(0, b)
    return score


def test_encoding_of_a_hand_made_score_and_its_round_trip(tmp_path):
    roll = piano.encode_score(_score())
    expected = np.zeros((8, 88), np.uint8)
    key = lambda name: music21.pitch.Pitch(name).midi - piano.LOWEST  # noqa: E731
    expected[0:3, key("C5")] = 1  # tied: one note held 3 quarters
    expected[4, key("G5")] = 1  # the off-beat eighth E5 at 3.5 sounds at no quarter onset
    expected[6:8, key("D5")] = 1
    expected[0:4, [key("C3"), key("G3")]] = 1  # the chord
    # frame 5: every voice rests -> an empty frame, kept
    assert roll.shape == (8, 88) and np.array_equal(roll, expected)
    again = piano.encode_score(piano.decode_roll(roll))
    assert np.array_equal(again, roll)  # held notes, rests and the trailing length survive
    path = piano.write_midi(roll, tmp_path / "x.mid")
    parsed = music21.converter.parse(path)
    assert path.read_bytes()[:4] == b"MThd" and np.array_equal(piano.encode_score(parsed)[:8], roll)


def test_a_note_off_the_piano_is_refused_in_one_line():
    with pytest.raises(GenexpError, match=r"MIDI note 12 is outside the piano's 21\.\.108"):
        piano.key_of(12, "x")


def test_missing_music21_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "music21", None)  # import music21 raises ImportError
    with pytest.raises(GenexpError, match=r"need the music21 package .*pip install music21==10\.5\.1"):
        piano.decode_roll(np.zeros((2, 88)))


# ---- the published pickle format ---------------------------------------------------------------------------
def _jsb(tmp_path, data) -> str:
    path = tmp_path / "jsb.pickle"
    path.write_bytes(pickle.dumps(data, protocol=2))
    return str(path)


def test_jsb_pickle_is_read_with_its_own_split(tmp_path):
    data = {
        "train": [[(60, 64, 67), (), (62,)], [(21,), (108, 21)]],
        "valid": [[(72.0,)]],  # Python 2 pickles may hold floats
        "test": [[(48, 55), (48, 55), (50,)]],
    }
    dm = BachChoralesDataModule(path=_jsb(tmp_path, data), batch_size=1, eval_batch_size=2)
    dm.setup()
    x, lengths = dm.split_tensors("train")
    assert x.shape == (2, 3, 88) and lengths.tolist() == [3, 2] and dm.info.kind == "sequence"
    assert [piano.to_steps(r[:n].numpy()) for r, n in zip(x, lengths, strict=True)] == [
        [(60, 64, 67), (), (62,)],
        [(21,), (21, 108)],
    ]
    assert x[1, 2:].sum() == 0  # padding after the piece's end
    assert dm.split_tensors("test")[1].tolist() == [3] and dm.split_tensors("val")[0].shape[0] == 1
    frames = BachChoralesDataModule(path=_jsb(tmp_path, data), batch_size=1, frames=True)
    frames.setup()
    assert frames.info.kind == "vector" and frames.split_tensors("train")[0].shape == (5, 88)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize(
    "data, error",
    [
        ({"train": [], "valid": [[()]], "test": [[()]]}, r"train must be a non-empty list of pieces"),
        ({"train": [[(60,)]], "test": [[(60,)]]}, r"must be a dict with keys train, valid, test"),
        ({"train": [[(60,)]], "valid": [[(12,)]], "test": [[()]]}, r"valid\[0\]\[0\]: MIDI note 12 is outside"),
        ({"train": [[("C4",)]], "valid": [[()]], "test": [[()]]}, r"'C4' is not a MIDI note number"),
        ({"train": [[_Evil()]], "valid": [[()]], "test": [[()]]}, r"not a JSB-format pickle .*print"),
    ],
    ids=["empty-split", "missing-key", "off-the-piano", "not-a-number", "code"],
)
def test_bad_pickles_are_refused_in_one_line(tmp_path, data, error, capsys):
    with pytest.raises(GenexpError, match=error) as e:
        BachChoralesDataModule(path=_jsb(tmp_path, data)).setup()
    assert "\n" not in str(e.value) and str(e.value).startswith("data.path=")
    assert "pwned" not in capsys.readouterr().out  # nothing in the pickle ran


# ---- the corpus cache ------------------------------------------------------------------------------------------
def test_cache_is_written_atomically_and_split_by_piece(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    rolls = [(rng.random((int(rng.integers(3, 9)), 88)) < 0.05).astype(np.uint8) for _ in range(20)]
    calls = []
    monkeypatch.setattr(piano, "bach_corpus", lambda: calls.append(1) or ([f"bwv{i}" for i in range(20)], rolls))
    dm = BachChoralesDataModule(root=str(tmp_path), batch_size=2)
    dm.prepare_data()
    assert [p.name for p in tmp_path.iterdir()] == [sequences.CACHE]  # no temp file left
    dm.setup()
    dm2 = BachChoralesDataModule(root=str(tmp_path), batch_size=2)
    dm2.prepare_data(), dm2.setup()
    assert len(calls) == 1  # read from the cache the second time
    sizes = {k: len(dm.split_tensors(k)[0]) for k in ("train", "val", "test")}
    assert sizes == {"train": 12, "val": 4, "test": 4}
    for k in sizes:  # the same seeded split both times, and each piece in one split only
        assert torch.equal(dm.split_tensors(k)[0], dm2.split_tensors(k)[0])
    idx = sequences.split_by_piece(20, 0.2, 0.2, 0)
    assert sorted(np.concatenate(list(idx.values()))) == list(range(20))
    other = sequences.split_by_piece(20, 0.2, 0.2, 1)
    assert not np.array_equal(idx["test"], other["test"])
    (tmp_path / sequences.CACHE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(GenexpError, match=r"unreadable cache .*delete it to rebuild it"):
        BachChoralesDataModule(root=str(tmp_path)).setup()


@pytest.mark.slow
def test_the_real_corpus_cache():
    """music21's four-part chorales (builds ./data/bach_chorales once: minutes)."""
    dm = BachChoralesDataModule()
    dm.prepare_data(), dm.setup()
    n = {k: len(dm.split_tensors(k)[0]) for k in ("train", "val", "test")}
    assert 340 <= sum(n.values()) <= 380 and n["val"] == n["test"] == round(0.2 * sum(n.values()))
    x, lengths = dm.split_tensors("train")
    frames = x.sum(-1)[torch.arange(x.shape[1])[None] < lengths[:, None]]
    assert frames.float().mean() > 3.0 and frames.max() <= 8  # four voices (some divided) per quarter


# ---- the model ---------------------------------------------------------------------------------------------------
def _tiny(n_visible=5, n_hidden=3, n_u=4, seed=0, **kw) -> RNNRBM:
    hp = dict(k=1, sample_steps=3, sample_length=6, lr=1e-3, cosine=False, seed=seed)
    m = RNNRBM(n_visible=n_visible, n_hidden=n_hidden, n_hidden_recurrent=n_u, **{**hp, **kw})
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # weights large enough that every term matters
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return m.double()


def _sequences(b, t, n, seed=0) -> torch.Tensor:
    return (torch.rand(b, t, n, generator=torch.Generator().manual_seed(seed)) < 0.4).double()


def test_with_zero_rnn_weights_it_is_a_plain_rbm():
    m = _tiny(n_visible=6, n_hidden=4)
    with torch.no_grad():
        m.W_uv.zero_(), m.W_uh.zero_()
    rbm = RBM(
        n_visible=6, n_hidden=4, k=1, persistent=False, lr=0.1, momentum=0.0, weight_decay=0.0,
        lr_schedule="constant", lr_decay=1.0, sample_steps=1, seed=0,
    ).double()  # fmt: skip
    rbm.rbm.load_state_dict(m.rbm.state_dict())
    x, lengths = _sequences(3, 5, 6), torch.tensor([5, 2, 4])
    v, bv, bh, mask = m.frames(x, lengths)
    assert len(v) == 11
    assert torch.allclose(m.rbm.free_energy(v, bh, bv), rbm.free_energy(v), atol=1e-12, rtol=0)
    # and the log-likelihood is the sum of the plain RBM's exact log p over each piece's frames
    log_z = ais.exact_log_partition(rbm.rbm)
    per_frame = -rbm.free_energy(x.reshape(-1, 6)).reshape(3, 5) - log_z
    expected = (per_frame * mask).sum(1)
    assert torch.allclose(m.log_likelihood(x, lengths), expected, atol=1e-9, rtol=0)


@torch.no_grad()
def _brute_force_loglik(m: RNNRBM, piece: torch.Tensor) -> float:
    """log p(piece) from eq. 9-11 written out step by step, each p(v_t | past) by enumerating v and h."""
    W, bv0, bh0 = m.rbm.W, m.rbm.vbias, m.rbm.hbias
    rnn = m.rnn
    n_v, n_h = W.shape
    vs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=n_v)), dtype=W.dtype)
    hs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=n_h)), dtype=W.dtype)
    u, total = torch.zeros(rnn.hidden_size, dtype=W.dtype), 0.0
    for v_t in piece:
        bv, bh = bv0 + u @ m.W_uv, bh0 + u @ m.W_uh
        neg_energy = (vs @ bv)[:, None] + (hs @ bh)[None, :] + vs @ W @ hs.T  # [2^n_v, 2^n_h]
        log_z = torch.logsumexp(neg_energy.flatten(), 0)
        row = int((vs == v_t).all(1).nonzero())
        total += float(torch.logsumexp(neg_energy[row], 0) - log_z)
        u = torch.tanh(rnn.weight_ih_l0 @ v_t + rnn.bias_ih_l0 + rnn.weight_hh_l0 @ u + rnn.bias_hh_l0)
    return total


def test_exact_log_likelihood_per_step_equals_brute_force():
    m = _tiny()
    x, lengths = _sequences(3, 4, 5, seed=1), torch.tensor([4, 1, 3])
    assert m.likelihood_kind == "exact"
    got = m.log_likelihood(x, lengths)
    expected = [_brute_force_loglik(m, x[i, : lengths[i]]) for i in range(3)]
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64), atol=1e-9, rtol=0)


def test_probabilities_of_all_sequences_sum_to_one():
    m = _tiny(n_visible=3, n_hidden=2, n_u=2, seed=5)
    frames = list(itertools.product([0.0, 1.0], repeat=3))
    x = torch.tensor([list(p) for p in itertools.product(frames, repeat=2)], dtype=torch.float64)  # [64, 2, 3]
    total = m.log_likelihood(x, torch.full((64,), 2)).exp().sum()
    assert abs(float(total) - 1.0) < 1e-9


def test_ais_per_row_matches_the_exact_log_partition():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(12, 30, generator=g) * 0.5
    hbias, vbias = torch.randn(5, 30, generator=g) * 0.5, torch.randn(5, 12, generator=g)
    exact = ais.exact_log_partition_rows(W, hbias, vbias)
    one = ais.exact_log_partition(W=W, hbias=hbias[0], vbias=vbias[0])
    assert torch.allclose(exact[0], one, atol=1e-9)
    est, ess = ais.ais_log_partition_rows(W, hbias, vbias, vbias.clone(), n_chains=64, n_betas=400, seed=0)
    assert est.shape == ess.shape == (5,) and (ess > 1).all()
    assert torch.allclose(est, exact, atol=0.1), est - exact


def test_sampling_returns_binary_rolls_of_the_requested_length():
    m = build_model("rnnrbm").eval()
    a = m.sample(3, generator=torch.Generator().manual_seed(0))
    b = m.sample(2, generator=torch.Generator().manual_seed(0), length=11)
    assert a.shape == (3, 64, 88) and b.shape == (2, 11, 88)
    assert set(torch.unique(torch.cat([a.flatten(), b.flatten()])).tolist()) <= {0.0, 1.0}


def test_frame_accuracy_and_the_bernoulli_baseline():
    target = torch.zeros(2, 3, 4)
    target[0, 0, :2] = 1  # piece 0: 2 notes in frame 0
    target[1, 0, 3] = 1
    target[1, 2, 0] = 1  # past piece 1's end (length 2): ignored
    pred = torch.zeros_like(target)
    pred[0, 0, 0] = pred[0, 1, 1] = pred[1, 0, 3] = 1
    pred[1, 2, 1] = 1  # past the end: ignored
    lengths = torch.tensor([3, 2])
    assert frame_counts(pred, target, lengths) == (2, 1, 1)
    assert frame_accuracy(pred, target, lengths) == pytest.approx(0.5)
    p = bernoulli_marginals(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), smoothing=1.0)
    assert torch.allclose(p, torch.tensor([0.75, 0.5], dtype=torch.float64))
    assert float(bernoulli_loglik(p, torch.tensor([[1.0, 0.0]]))) == pytest.approx(math.log(0.75 * 0.5))


def test_it_learns_the_fake_chorales(tmp_path):
    """A few seconds of training on data=fake_sequences: the next-frame prediction beats the untrained one."""
    from genexp.run import run

    cfg = compose_config("model=rnnrbm", "data=fake_sequences", "trainer=smoke", "logger=csv", "test=false")
    cfg.trainer.max_epochs, cfg.trainer.limit_train_batches, cfg.trainer.limit_val_batches = 40, 1.0, 1.0
    cfg.callbacks.piano_rolls = None
    cfg.paths.output_dir = str(tmp_path)
    torch.set_num_threads(1)
    assert run(cfg) > 0.3  # val/frame_acc; the untrained model predicts no note at all (0)


def test_sequence_models_refuse_images_and_frame_models_take_frames():
    dm = FakeSequenceDataModule(frames=True)
    dm.setup()
    rbm = build_model("rbm", "model.n_visible=88")
    rbm.check_data(dm.info)  # 88 keys per frame
    images = compose_config("data=fake").data
    import hydra

    fake = hydra.utils.instantiate(images, _convert_="all")
    fake.setup()
    with pytest.raises(GenexpError, match=r"^data='fake': RNNRBM needs sequence data, not image data$"):
        build_model("rnnrbm").check_data(fake.info)
    seq = FakeSequenceDataModule()
    seq.setup()
    with pytest.raises(GenexpError, match=r"^model\.n_visible=80: must be 88, the keys per frame of data=fake_seq"):
        build_model("rnnrbm", "model.n_visible=80").check_data(seq.info)
