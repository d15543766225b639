"""Fréchet distance, class-conditional accuracy, mode coverage and k-NN precision/recall of samples,
all on the penultimate features of a shipped feature network (`genexp.metrics.features`; hence
`fid_mnist_cnn`: not comparable with Inception-FID numbers of other papers), and a nearest-neighbour
check that samples are not copies of training images."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import torch
from tqdm.auto import tqdm

from genexp.metrics.features import load_feature_net


@torch.no_grad()
def generate(model, n: int, batch_size: int = 500, seed: int = 0, progress: bool = True):
    """n samples with balanced labels 0..9 (label i % 10), drawn with a seeded generator."""
    labels = torch.arange(n, device=model.device) % 10
    g = torch.Generator(device=model.device).manual_seed(seed)
    was_training = model.training
    model.eval()
    chunks = [
        model.sample(len(lab), labels=lab, generator=g).float()
        for lab in tqdm(labels.split(batch_size), desc="sampling", disable=not progress, leave=False)
    ]
    model.train(was_training)
    return torch.cat(chunks).clamp_(0, 1), labels


@torch.no_grad()
def classify(clf, images: torch.Tensor, batch_size: int = 1000):
    """(features [N, F], logits [N, 10]) of images [N, 1, 28, 28] in [0, 1]."""
    device = next(clf.parameters()).device
    feats, logits = [], []
    for x in images.split(batch_size):
        f = clf.features(x.to(device).float())
        feats.append(f.cpu())
        logits.append(clf.head(f).cpu())
    return torch.cat(feats), torch.cat(logits)


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))  (Heusel et al. 2017, eq. 6), float64."""
    a, b = real.double().numpy(), fake.double().numpy()
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")  # e.g. a diverged generator: no distance, and no sqrtm crash
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # near-singular covariances of small sample sets: the real part is fine
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s_a @ s_b)
    if np.iscomplexobj(covmean):  # tiny imaginary parts from numerical error
        covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean))


def _kth_nn_radius(x: torch.Tensor, k: int, chunk: int = 2000) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row."""
    return torch.cat([torch.cdist(c, x).kthvalue(k + 1, dim=1).values for c in x.split(chunk)])  # +1: self at 0


def _coverage(query: torch.Tensor, ref: torch.Tensor, radii: torch.Tensor, chunk: int = 2000) -> float:
    """Fraction of query rows inside at least one ball B(ref_j, radii_j)."""
    inside = [(torch.cdist(c, ref) <= radii[None]).any(1) for c in query.split(chunk)]
    return torch.cat(inside).float().mean().item()


def knn_precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): the k-NN balls of each set
    approximate its manifold; precision = fakes on the real manifold, recall = reals on the fake one."""
    real, fake = real.float(), fake.float()
    precision = _coverage(fake, real, _kth_nn_radius(real, k))
    recall = _coverage(real, fake, _kth_nn_radius(fake, k))
    return precision, recall


def class_histogram(pred: torch.Tensor, n_classes: int = 10) -> dict[str, float]:
    """Fractions per predicted class, number of classes with >= 1% of samples (a tenth of the uniform
    share), and KL(histogram || uniform) in nats (0 for perfectly balanced samples)."""
    p = torch.bincount(pred, minlength=n_classes).double() / len(pred)
    nz = p > 0
    kl = float((p[nz] * (p[nz] * n_classes).log()).sum())
    out = {f"class_frac_{c}": float(p[c]) for c in range(n_classes)}
    entropy = float(-(p[nz] * p[nz].log()).sum())  # log(n_classes) for balanced samples, 0 for one class
    return {**out, "modes_covered": int((p >= 0.1 / n_classes).sum()), "kl_to_uniform": kl, "class_entropy": entropy}


def code_information(q: torch.Tensor) -> float:
    """I(x; c) in nats of an encoder's posteriors q(c | x) [N, K] over N images, x uniform over them:
    H(mean_x q) - mean_x H(q) (the mutual information a categorical clustering aims at, e.g. RIM, Krause
    et al. 2010). log K for confident codes used equally, 0 when q ignores x. No labels are involved."""
    q = q.double()
    return float(_entropy(q.mean(0)) - _entropy(q).mean())


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the distributions along the last axis, with 0 log 0 = 0."""
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


def within_class_diversity(
    f_real: torch.Tensor, y_real: torch.Tensor, f_fake: torch.Tensor, y_fake: torch.Tensor, per_class: int = 500
) -> float:
    """Mean over classes of (mean pairwise feature distance of samples of class c) / (the same for real
    images of class c): ~1 when each class is as varied as the data, -> 0 when a class collapses to one
    image. Classes with < 2 samples or real images are left out (nan if none is left); at most
    `per_class` of each (the first ones) enter a class's pairwise mean."""
    ratios = []
    for c in torch.unique(y_real).tolist():
        real, fake = f_real[y_real == c][:per_class], f_fake[y_fake == c][:per_class]
        if len(real) >= 2 and len(fake) >= 2:
            ratios.append(float(torch.pdist(fake.double()).mean() / torch.pdist(real.double()).mean()))
    return sum(ratios) / len(ratios) if ratios else float("nan")


def sample_quality(
    f_real: torch.Tensor,
    f_fake: torch.Tensor,
    pred: torch.Tensor,
    labels: torch.Tensor | None,
    k: int = 3,
    y_real: torch.Tensor | None = None,
) -> dict[str, float]:
    """All sample metrics from features of real [N, F] and generated [M, F] images, the feature
    network's class predictions of the generated ones, the labels asked for (conditional models), and
    the real images' labels (`y_real`: for the within-class diversity; the fakes' class is the label
    asked for, or the predicted one for unconditional models)."""
    out = {"fid": frechet_distance(f_real, f_fake)}
    if labels is not None:
        out["cond_acc"] = (pred == labels.cpu()).float().mean().item()
    out.update(class_histogram(pred))
    if y_real is not None:
        y_fake = labels.cpu() if labels is not None else pred
        out["within_class_diversity"] = within_class_diversity(f_real, y_real.cpu(), f_fake, y_fake)
    out["precision"], out["recall"] = knn_precision_recall(f_real, f_fake, k)
    return out


def _nearest_distance(query: torch.Tensor, ref: torch.Tensor, chunk: int = 500) -> torch.Tensor:
    """Euclidean distance from each row of query [N, D] to its nearest row of ref [M, D]."""
    return torch.cat([torch.cdist(q, ref).min(1).values for q in query.split(chunk)])


@torch.no_grad()
def nearest_neighbour_check(
    fake: torch.Tensor, train: torch.Tensor, held_out: torch.Tensor, quantile: float = 0.01
) -> dict[str, float]:
    """Are samples copies of training images? Pixel-space distance of each sample to its nearest
    training image, against the same distance for held-out real digits (which are not copies):
    - nn_dist_fake, nn_dist_real: median nearest-training-neighbour distances;
    - nn_ratio = nn_dist_fake / nn_dist_real (about 1 or more: no memorisation; << 1: copies);
    - copy_frac: fraction of samples nearer to a training image than `quantile` of held-out digits are.
    Images [N, 1, 28, 28] in [0, 1]."""
    train = train.flatten(1).float()
    d_fake = _nearest_distance(fake.flatten(1).float().to(train.device), train)
    d_real = _nearest_distance(held_out.flatten(1).float().to(train.device), train)
    threshold = torch.quantile(d_real, quantile)
    med_fake, med_real = d_fake.median().item(), d_real.median().item()
    return {
        "nn_dist_fake": med_fake,
        "nn_dist_real": med_real,
        "nn_ratio": med_fake / med_real,
        "copy_frac": (d_fake < threshold).float().mean().item(),
    }


def real_data_floor(dm, feature_net: str, n: int = 10000) -> dict[str, float]:
    """What a perfect generator would score: `n` held-out real images (the val split of a set-up
    datamodule, never trained on) against the test split, as SampleQuality scores samples (the same
    features of the shipped `feature_net`, `frechet_distance`, k-NN precision/recall), and the
    nearest-training-neighbour distances of held-out reals (what "not copies" looks like)."""
    train, val, test = (dm.split_tensors(s)[0] for s in ("train", "val", "test"))
    clf = load_feature_net(feature_net)
    f_test, _ = classify(clf, test[:n])
    f_val, _ = classify(clf, val[:n])
    precision, recall = knn_precision_recall(f_test, f_val)
    nn = nearest_neighbour_check(val[:1000], train, test[:1000])
    return {
        f"fid_{feature_net}_floor": frechet_distance(f_test, f_val),
        "precision": precision,
        "recall": recall,
        **{f"val_{k}": v for k, v in nn.items()},
        "n_real": len(f_val),
        "n_test": len(f_test),
    }
