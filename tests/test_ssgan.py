"""The semi-supervised GAN's maths (the K+1-class view of K logits, the loss decomposition), where labels
enter (the supervised term only) and the labelled subset (balanced, seeded, disjoint from validation).
The generic contract, resume and DDP tests cover `model=ssgan` by glob."""

from __future__ import annotations

import hydra
import pytest
import torch
import torch.nn.functional as F

from genexp.nn.ssgan import (
    class_probabilities,
    feature_matching_loss,
    supervised_loss,
    unsupervised_fake_loss,
    unsupervised_real_loss,
)
from tests.conftest import build_model, compose_config, quiet_trainer


def test_k_plus_one_probabilities_sum_to_one_and_fake_is_one_over_z_plus_one():
    logits = torch.randn(64, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4
    p = class_probabilities(logits)
    assert p.shape == (64, 11)
    torch.testing.assert_close(p.sum(1), torch.ones(64, dtype=torch.float64))
    z = logits.exp().sum(1)
    torch.testing.assert_close(p[:, -1], 1 / (z + 1))
    torch.testing.assert_close(p[:, :10], logits.exp() / (z + 1)[:, None])


def test_loss_decomposition_equals_cross_entropy_over_k_plus_one_classes():
    """L_supervised + L_unsupervised (unlabelled batch = the labelled one) is the plain (K+1)-way
    cross-entropy: real images of class y, generated images of class K+1."""
    g = torch.Generator().manual_seed(1)
    l_real = torch.randn(32, 10, generator=g, dtype=torch.float64) * 3
    l_fake = torch.randn(32, 10, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (32,), generator=g)

    def extend(logits):
        return torch.cat([logits, logits.new_zeros(len(logits), 1)], 1)

    direct = F.cross_entropy(extend(l_real), y) + F.cross_entropy(extend(l_fake), torch.full((32,), 10))
    split = supervised_loss(l_real, y) + unsupervised_real_loss(l_real) + unsupervised_fake_loss(l_fake)
    torch.testing.assert_close(split, direct)
    # stable where a naive log(Z) would overflow
    huge = torch.full((4, 10), 500.0)
    assert torch.isfinite(unsupervised_real_loss(huge)) and torch.isfinite(unsupervised_fake_loss(huge))
    assert unsupervised_fake_loss(huge) == pytest.approx(500 + torch.log(torch.tensor(10.0)).item(), rel=1e-6)


def test_feature_matching_is_zero_for_equal_means_and_positive_otherwise():
    f = torch.randn(50, 8, generator=torch.Generator().manual_seed(2))
    assert feature_matching_loss(f, f.flip(0)) < 1e-12
    assert feature_matching_loss(f, f + 1.0) == pytest.approx(1.0)


def _fake_dm(**kw):
    cfg = compose_config("data=fake", "data.labelled=50", *(f"data.{k}={v}" for k, v in kw.items()))
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    dm.setup()
    return dm


def _train(dm, tmp_path, *overrides) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    m = build_model("ssgan", "model.nz=8", *overrides)
    quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=3).fit(m, datamodule=dm)
    return m.state_dict()


@pytest.mark.parametrize("g_loss", ["feature_matching", "non_saturating"])
def test_labels_enter_only_through_the_labelled_subset(tmp_path, g_loss):
    """Scrambling every label of the training split (the unlabelled stream) changes nothing; changing the
    labelled subset's labels changes the weights (so the check can fail)."""
    base = _train(_fake_dm(), tmp_path, f"model.g_loss={g_loss}")
    dm = _fake_dm()
    x, y = dm._splits["train"]
    dm._splits["train"] = (x, y[torch.randperm(len(y), generator=torch.Generator().manual_seed(3))].flip(0))
    scrambled = _train(dm, tmp_path, f"model.g_loss={g_loss}")
    assert all(torch.equal(base[k], scrambled[k]) for k in base)
    dm = _fake_dm()
    dm.labelled_y = (dm.labelled_y + 1) % 10
    relabelled = _train(dm, tmp_path, f"model.g_loss={g_loss}")
    assert any(not torch.equal(base[k], relabelled[k]) for k in base if base[k].is_floating_point())


def test_fixed_weight_norm_scales_stay_fixed(tmp_path):
    """train_scale=false: the hidden layers' g keep their data-dependent initial values through training
    (the generator phase's freezing of the classifier must not switch them back on); the output's g learns."""
    m = build_model("ssgan", "model.nz=8")
    dm = _fake_dm()
    scales = {}

    class Grab(__import__("pytorch_lightning").Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:  # after the data-dependent init
                scales.update({k: v.clone() for k, v in pl_module.classifier.state_dict().items() if "original0" in k})

    quiet_trainer(tmp_path, [Grab()], max_epochs=1, limit_train_batches=3).fit(m, datamodule=dm)
    after = {k: v for k, v in m.classifier.state_dict().items() if "original0" in k}
    assert [k for k in after if not torch.equal(after[k], scales[k])] == ["head.1.parametrizations.weight.original0"]


def test_baseline_trains_the_classifier_only(tmp_path):
    m = build_model("ssgan", "model.nz=8", "model.lambda_unsup=0")
    g0 = {k: v.clone() for k, v in m.generator.state_dict().items()}
    c0 = {k: v.clone() for k, v in m.classifier.state_dict().items()}
    quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=3).fit(m, datamodule=_fake_dm())
    assert all(torch.equal(g0[k], v) for k, v in m.generator.state_dict().items())
    assert any(not torch.equal(c0[k], v) for k, v in m.classifier.state_dict().items())


def test_labelled_batches_are_balanced_tilings_and_reproducible(tmp_path):
    m = build_model("ssgan", "model.nz=8", "model.labelled_batch=100")
    dm = _fake_dm()
    m.trainer = quiet_trainer(tmp_path)
    m.trainer.datamodule = dm  # what fit() would attach
    m._labelled, m._labelled_seed = (dm.labelled_x, dm.labelled_y), 7
    x1, y1 = m.labelled_batch()
    assert torch.bincount(y1, minlength=10).tolist() == [10] * 10  # 50 labelled images, each twice
    x2, y2 = m.labelled_batch()
    assert torch.equal(x1, x2) and torch.equal(y1, y2)  # the same update draws the same batch
    m.gen_step += 1
    assert not torch.equal(m.labelled_batch()[1], y1)


def test_refuses_to_train_without_a_labelled_subset(tmp_path):
    m = build_model("ssgan", "model.nz=8")
    dm = hydra.utils.instantiate(compose_config("data=fake", "data.labelled=null").data, _convert_="all")
    with pytest.raises(Exception, match=r"^data\.labelled=null: SSGAN trains on a labelled subset"):
        quiet_trainer(tmp_path).fit(m, datamodule=dm)


@pytest.mark.slow
def test_labelled_subset_of_mnist_is_disjoint_from_validation(mnist_root):
    cfg = compose_config("data.labelled=100", "data.labelled_seed=3", f"data.root={mnist_root}")
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    dm.setup()
    assert torch.bincount(dm.labelled_y).tolist() == [10] * 10
    val = {r.numpy().tobytes() for r in dm.split_tensors("val")[0]}
    assert not any(r.numpy().tobytes() in val for r in dm.labelled_x)
