"""IDX reading and verification, the download path (against a local HTTP server), the datamodules.

Tests that read the real MNIST are marked slow; FakeDataModule covers the shared logic in the fast tier.
"""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import shutil
import threading
import time
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch

from genexp import GenexpError
from genexp.data import DataInfo, FakeDataModule, MNISTDataModule, TensorDataModule, load_mnist
from genexp.data.mnist import FASHION_MNIST, FILES, parse_idx, resolve_root, write_idx

# ---- IDX ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, name):
    array = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    write_idx(array, tmp_path / name)
    raw = (gzip.open if name.endswith(".gz") else open)(tmp_path / name, "rb").read()
    assert np.array_equal(parse_idx(raw), array)


def test_idx_header_errors():
    good = bytes([0, 0, 8, 1]) + np.array([3], ">u4").tobytes() + bytes([1, 2, 3])
    assert parse_idx(good).tolist() == [1, 2, 3]
    with pytest.raises(GenexpError, match="bad magic"):
        parse_idx(b"\x01\x02" + good[2:])
    with pytest.raises(GenexpError, match="dtype 0x0d"):
        parse_idx(good[:2] + b"\x0d" + good[3:])
    with pytest.raises(GenexpError, match="3 bytes.*has 10 bytes|shape \\(3,\\)"):
        parse_idx(good[:-1])


def _copy_mnist(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for stem, _, _ in FILES.values():
        shutil.copyfile(src / f"{stem}.gz", dst / f"{stem}.gz")
    return dst


@pytest.mark.slow
def test_real_mnist_loads_and_verifies(mnist_root):
    arrays = load_mnist(mnist_root, download_missing=False)
    assert arrays["train_images"].shape == (60000, 28, 28) and arrays["test_labels"].shape == (10000,)
    assert np.bincount(arrays["test_labels"]).tolist()[:3] == [980, 1135, 1032]  # the official class counts


@pytest.mark.slow
def test_truncated_gzip_is_a_clear_error(mnist_root, tmp_path):
    root = _copy_mnist(mnist_root, tmp_path / "d")
    path = root / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(GenexpError, match=r"t10k-labels-idx1-ubyte.gz.*(corrupted|truncated)"):
        load_mnist(root, download_missing=False)


@pytest.mark.slow
def test_altered_content_fails_checksum(mnist_root, tmp_path):
    root = _copy_mnist(mnist_root, tmp_path / "d")
    labels = np.frombuffer(gzip.open(root / "t10k-labels-idx1-ubyte.gz").read()[8:], np.uint8).copy()
    labels[0] = (labels[0] + 1) % 10  # a valid IDX file with one wrong label
    write_idx(labels, root / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(GenexpError, match="md5 of the content is .*expected 27ae3e4e"):
        load_mnist(root, download_missing=False)


@pytest.mark.slow
def test_raw_uncompressed_files_are_accepted(mnist_root, tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    for stem, _, _ in FILES.values():
        (root / stem).write_bytes(gzip.open(mnist_root / f"{stem}.gz").read())
    assert load_mnist(root, download_missing=False)["train_labels"].shape == (60000,)


def test_missing_offline_names_where_it_looked(tmp_path):
    with pytest.raises(GenexpError, match=f"not found in {tmp_path}.*GENEXP_DATA_DIR"):
        load_mnist(tmp_path, download_missing=False)


# ---- download against a local server ------------------------------------------------------------


class _Server:
    """A tiny HTTP server on 127.0.0.1: serves files from a folder; `truncate` sends half a file
    (with the full Content-Length) and closes the connection, like a server dying mid-file."""

    def __init__(self, folder: Path, truncate: bool = False):
        folder_, truncate_ = folder, truncate

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = folder_ / self.path.lstrip("/").split("/")[-1]
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if truncate_ else data)
                if truncate_:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.slow
def test_download_good_files(mnist_root, tmp_path):
    root = tmp_path / "data"
    with _Server(mnist_root) as server:
        arrays = load_mnist(root, mirrors=["http://127.0.0.1:9/nothing-here/", server.url])  # 1st mirror is dead
    assert arrays["train_images"].shape == (60000, 28, 28)
    assert sorted(p.name for p in root.iterdir()) == sorted(f"{stem}.gz" for stem, _, _ in FILES.values())


@pytest.mark.slow
def test_download_wrong_checksum_leaves_nothing(mnist_root, tmp_path):
    served = _copy_mnist(mnist_root, tmp_path / "served")
    write_idx(np.zeros(10000, np.uint8), served / "t10k-labels-idx1-ubyte.gz")  # well-formed, wrong content
    root = tmp_path / "data"
    with _Server(served) as server, pytest.raises(GenexpError, match="t10k-labels-idx1-ubyte.*md5"):
        load_mnist(root, mirrors=[server.url])
    left = sorted(p.name for p in root.iterdir())
    assert "t10k-labels-idx1-ubyte.gz" not in left and not any(n.startswith(".download") for n in left)


@pytest.mark.slow
def test_download_dying_server_leaves_no_partial_file(mnist_root, tmp_path):
    root = tmp_path / "data"
    with _Server(mnist_root, truncate=True) as server, pytest.raises(GenexpError, match="download failed"):
        load_mnist(root, mirrors=[server.url])
    assert not root.exists()  # the folder it made for the download is gone again: no empty data/ left


def test_failed_download_keeps_a_folder_that_was_there(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(GenexpError, match="download failed"):
        load_mnist(root, mirrors=["http://127.0.0.1:9/nothing-here/"])
    assert root.is_dir() and list(root.iterdir()) == []


# ---- Fashion-MNIST: the same reader, its own files, folders and checksums -------------------------


@pytest.fixture(scope="session")
def fashion_root() -> Path:
    folder = Path(FASHION_MNIST.system_dirs[0][0])
    if not (folder / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.fail(f"Fashion-MNIST not found at {folder}: apt-get install dataset-fashion-mnist (.ci/run does)")
    return folder


def _links(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for p in src.glob("*.gz"):
        (dst / p.name).symlink_to(p)
    return dst


def test_fashion_folders_in_order(fashion_root, tmp_path, monkeypatch):
    """data.root, else $GENEXP_FASHION_MNIST_DIR, each only if it holds the files; then the package's folder."""
    monkeypatch.delenv(FASHION_MNIST.env, raising=False)
    assert resolve_root(None, "fashion_mnist") == fashion_root
    assert resolve_root(tmp_path / "empty", "fashion_mnist") == fashion_root  # a named folder without the files
    env = _links(fashion_root, tmp_path / "env")
    monkeypatch.setenv(FASHION_MNIST.env, str(env))
    assert resolve_root(None, "fashion_mnist") == env
    named = _links(fashion_root, tmp_path / "named")
    assert resolve_root(named, "fashion_mnist") == named
    assert resolve_root(None, "mnist") != env  # MNIST keeps its own variable


def test_fashion_missing_everywhere_is_one_line_naming_three_places(tmp_path, monkeypatch):
    package = (str(tmp_path / "pkg"), "apt-get install dataset-fashion-mnist")
    spec = dataclasses.replace(FASHION_MNIST, system_dirs=(package,))
    monkeypatch.setenv(spec.env, str(tmp_path / "env"))
    with pytest.raises(GenexpError) as e:
        load_mnist(None, download_missing=False, dataset=spec)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("Fashion-MNIST files")
    places = (str(tmp_path / "env"), "data.root", "$GENEXP_FASHION_MNIST_DIR", str(tmp_path / "pkg"), "apt-get install")
    for place in places:
        assert place in msg, place
    with pytest.raises(GenexpError, match="data.dataset='kmnist': must be one of mnist, fashion_mnist"):
        MNISTDataModule(dataset="kmnist")


@pytest.mark.slow
def test_fashion_download_verifies_its_own_checksums(fashion_root, mnist_root, tmp_path):
    root, spec = tmp_path / "data", dataclasses.replace(FASHION_MNIST, system_dirs=())  # not the package's copy
    with _Server(fashion_root) as server:
        arrays = load_mnist(root, mirrors=[server.url], dataset=spec)
    assert arrays["train_images"].shape == (60000, 28, 28) and sorted(p.name for p in root.iterdir()) == sorted(
        f"{stem}.gz" for stem, _, _ in FASHION_MNIST.files.values()
    )
    with _Server(mnist_root) as server, pytest.raises(GenexpError, match="md5"):  # MNIST's files are not Fashion's
        load_mnist(tmp_path / "other", mirrors=[server.url], dataset=spec)
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
def test_fashion_info_from_the_data_config(fashion_root):
    from tests.conftest import compose_config

    dm = hydra.utils.instantiate(compose_config("data=fashion_mnist").data, _convert_="all")
    dm.setup()
    info = dm.info
    assert (info.name, info.n_classes, info.feature_net) == ("fashion_mnist", 10, "fashion_cnn")
    assert info.class_names[0] == "T-shirt/top" and info.class_names[9] == "Ankle boot"
    assert abs(info.mean_pixel - 0.2860) < 0.002  # Fashion-MNIST's mean grey level (0.2860 over the 60k)
    x, y = dm.split_tensors("test")
    assert x.shape == (10000, 1, 28, 28) and torch.bincount(y).tolist() == [1000] * 10


# ---- datamodule ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_splits_are_deterministic_and_disjoint(mnist_dm, mnist_root):
    x_tr, y_tr = mnist_dm.split_tensors("train")
    x_va, _ = mnist_dm.split_tensors("val")
    x_te, _ = mnist_dm.split_tensors("test")
    assert (len(x_tr), len(x_va), len(x_te)) == (50000, 10000, 10000)
    assert x_tr.min() >= 0 and x_tr.max() == 1 and x_tr.shape[1:] == (1, 28, 28)
    other = MNISTDataModule(root=str(mnist_root))
    other.setup()
    assert torch.equal(other.split_tensors("val")[0], x_va)
    # disjoint: no val image equals the train image with the same pixel sum (cheap exact check on 300)
    train_keys = {hash(r.numpy().tobytes()) for r in (x_tr[:, 0] * 255).to(torch.uint8)}
    assert sum(hash(r.numpy().tobytes()) in train_keys for r in (x_va[:300, 0] * 255).to(torch.uint8)) <= 3


@pytest.mark.slow
def test_batches_shuffle_per_epoch_and_cover_the_split(mnist_dm):
    loader = mnist_dm.train_dataloader()
    first = torch.cat([y for _, y in loader])
    second = torch.cat([y for _, y in loader])
    assert len(first) == len(loader) * 128 and not torch.equal(first, second)
    # the same images, up to the 50000 % 128 = 80 that drop_last leaves out of each epoch
    assert (torch.bincount(first, minlength=10) - torch.bincount(second, minlength=10)).abs().sum() <= 2 * 80


def test_ranks_get_disjoint_equal_shards():
    from genexp.data.loader import BatchLoader

    x, y = torch.arange(1000).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).to(torch.uint8), torch.arange(1000)
    shards = [
        torch.cat([b for _, b in BatchLoader(x, y, 10, True, True, seed=3, rank=r, world_size=3)]) for r in range(3)
    ]
    assert all(len(s) == 330 for s in shards)
    assert len(set(torch.cat(shards).tolist())) == 990


@pytest.mark.slow
def test_mnist_info(mnist_dm):
    info = mnist_dm.info
    assert (info.name, info.shape, info.n_classes, info.binary) == ("mnist", (1, 28, 28), 10, False)
    assert info.class_names == tuple("0123456789")
    assert abs(info.mean_pixel - 0.1307) < 0.002  # the well-known MNIST mean (0.1307 over all 60k)
    assert torch.equal(mnist_dm.split_tensors("val", raw=True)[0], mnist_dm.split_tensors("val")[0])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["static", "threshold", "dynamic"])
def test_binarization(mnist_root, mode):
    dm = MNISTDataModule(root=str(mnist_root), binarize=mode, val_size=1000)
    dm.setup()
    x1 = next(iter(dm.test_dataloader()))[0]
    x2 = next(iter(dm.test_dataloader()))[0]
    assert set(x1.unique().tolist()) <= {0.0, 1.0}
    grey = MNISTDataModule(root=str(mnist_root), val_size=1000)
    grey.setup()
    g = next(iter(grey.test_dataloader()))[0]
    # raw=True: the grey levels whatever data.binarize says; info.mean_pixel is of those grey levels too
    assert torch.equal(dm.split_tensors("test", raw=True)[0], grey.split_tensors("test")[0])
    assert dm.info.binary and not grey.info.binary and dm.info.mean_pixel == grey.info.mean_pixel
    # binary pixels follow the grey levels: mean of x ~ mean intensity
    assert abs(x1.mean().item() - g.mean().item()) < (0.02 if mode != "threshold" else 0.05)
    assert torch.equal(x1, x2) == (mode != "dynamic")  # only dynamic resamples


@pytest.mark.slow
def test_labelled_subset_is_balanced_and_seeded(mnist_root):
    dm = MNISTDataModule(root=str(mnist_root), labelled=100, labelled_seed=5)
    dm.setup()
    assert dm.labelled_x.shape == (100, 1, 28, 28) and torch.bincount(dm.labelled_y).tolist() == [10] * 10
    again = MNISTDataModule(root=str(mnist_root), labelled=100, labelled_seed=5)
    again.setup()
    other = MNISTDataModule(root=str(mnist_root), labelled=100, labelled_seed=6)
    other.setup()
    assert torch.equal(again.labelled_x, dm.labelled_x) and not torch.equal(other.labelled_x, dm.labelled_x)


@pytest.mark.slow
def test_one_hot_and_on_device(mnist_root):
    class FakeTrainer:  # the attributes the datamodule reads from a Trainer
        global_rank, world_size, current_epoch, sanity_checking = 0, 1, 0, False

        class strategy:
            root_device = torch.device("cpu")

    dm = MNISTDataModule(root=str(mnist_root), one_hot=True, on_device=True, batch_size=32)
    dm.trainer = FakeTrainer()
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 28, 28) and y.shape == (32, 10) and torch.equal(y.sum(1), torch.ones(32))
    assert not isinstance(dm.train_dataloader(), torch.utils.data.DataLoader)  # served by index


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"binarize": "otsu"}, "data.binarize='otsu' is not one of none, static, dynamic, threshold"),
        ({"labelled": 15}, "data.labelled=15 must be a multiple of 10"),
        ({"val_size": 60000}, "data.val_size=60000"),
        (
            {"batch_size": 100000},
            r"^data.batch_size=100000 is larger than the 50000 training images \(per rank\): must be an integer in "
            r"\[1, 50000\]$",
        ),
        ({"batch_size": 0}, r"^data.batch_size=0: must be an integer >= 1$"),
        ({"eval_batch_size": 0}, r"^data.eval_batch_size=0: must be an integer >= 1$"),
        ({"eval_batch_size": -5}, r"^data.eval_batch_size=-5: must be an integer >= 1$"),
    ],
)
def test_bad_values_are_one_clear_line(kwargs, match):
    with pytest.raises(GenexpError, match=match):
        MNISTDataModule(**kwargs)


def test_random_shift_moves_each_image_within_bounds():
    from genexp.data.augment import random_shift

    x = torch.zeros(200, 1, 28, 28)
    x[:, 0, 14, 14] = 1.0
    torch.manual_seed(0)
    y = random_shift(x, 2)
    assert torch.equal(random_shift(x, 0), x) and torch.equal(y.sum((1, 2, 3)), torch.ones(200))
    rows, cols = torch.nonzero(y[:, 0])[:, 1], torch.nonzero(y[:, 0])[:, 2]
    assert (rows - 14).abs().max() == 2 and (cols - 14).abs().max() == 2  # every offset in [-2, 2] used
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == 25


# ---- FakeDataModule and DataInfo (no files: the fast tier) ------------------------------------------


def _fake_trainer(rank: int = 0, world_size: int = 1):
    """The attributes the datamodule reads from a Trainer."""

    class strategy:
        root_device = torch.device("cpu")

    attributes = {"global_rank": rank, "world_size": world_size, "strategy": strategy}
    return type("FakeTrainer", (), {**attributes, "current_epoch": 0, "sanity_checking": False})()


def _fake(**kwargs) -> FakeDataModule:
    dm = FakeDataModule(**kwargs)
    dm.setup()
    return dm


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in (x.flatten(1) * 255).round().to(torch.uint8)}


def test_fake_splits_shapes_and_balanced_labels():
    dm = _fake()
    for split, n in (("train", 320), ("val", 80), ("test", 80)):
        x, y = dm.split_tensors(split)
        assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.bincount(y, minlength=10).tolist() == [n // 10] * 10
    x = dm.split_tensors("train")[0]
    assert x.min() == 0 and x.max() == 1
    # grey-level images: dark background, a minority of ink, soft edges (many distinct levels)
    assert x.median() < 0.1 and 0.05 < (x > 0.5).float().mean() < 0.3 and len(x.unique()) > 100
    assert len(_rows(x) | _rows(dm.split_tensors("val")[0]) | _rows(dm.split_tensors("test")[0])) == 480
    loader = dm.train_dataloader()
    xb, yb = next(iter(loader))
    assert len(loader) == 20 and xb.shape == (16, 1, 28, 28) and yb.shape == (16,)
    assert next(iter(dm.test_dataloader()))[0].shape == (40, 1, 28, 28)


def test_fake_is_deterministic_from_split_seed_and_fast():
    timings = []
    for _ in range(3):
        t = time.perf_counter()
        a = _fake(split_seed=4)
        timings.append(time.perf_counter() - t)
    assert min(timings) < 0.1
    b, c = _fake(split_seed=4), _fake(split_seed=5)
    for split in ("train", "val", "test"):
        assert torch.equal(a.split_tensors(split)[0], b.split_tensors(split)[0])
        assert torch.equal(a.split_tensors(split)[1], b.split_tensors(split)[1])
        assert not torch.equal(a.split_tensors(split)[0], c.split_tensors(split)[0])


def test_fake_classes_are_learnable():
    dm = _fake()
    (x, y), (xt, yt) = dm.split_tensors("train"), dm.split_tensors("test")
    torch.manual_seed(0)
    clf = torch.nn.Linear(784, 10)
    opt = torch.optim.Adam(clf.parameters(), lr=0.01)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(clf(x.flatten(1)), y).backward()
        opt.step()
    assert (clf(xt.flatten(1)).argmax(1) == yt).float().mean() >= 0.95


@pytest.mark.parametrize("mode", ["static", "threshold", "dynamic"])
def test_fake_binarization_and_raw(mode):
    grey, dm = _fake(), _fake(binarize=mode)
    x1, x2 = next(iter(dm.test_dataloader()))[0], next(iter(dm.test_dataloader()))[0]
    assert set(x1.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(x1, x2) == (mode != "dynamic")  # only dynamic resamples per pass
    raw = dm.split_tensors("test", raw=True)[0]
    assert torch.equal(raw, grey.split_tensors("test")[0]) and len(raw.unique()) > 2
    served = dm.split_tensors("test")[0]
    if mode == "dynamic":  # stored grey, drawn per batch
        assert torch.equal(served, raw)
    else:  # stored binary
        assert set(served.unique().tolist()) == {0.0, 1.0}
    if mode != "threshold":  # Bernoulli pixels follow the grey levels
        assert abs(x1.mean().item() - raw.mean().item()) < 0.01


def test_fake_labelled_subset_is_balanced_and_seeded():
    dm, again, other = _fake(labelled=50, labelled_seed=5), _fake(labelled=50, labelled_seed=5), _fake(labelled=50)
    assert dm.labelled_x.shape == (50, 1, 28, 28) and torch.bincount(dm.labelled_y).tolist() == [5] * 10
    assert _rows(dm.labelled_x) <= _rows(dm.split_tensors("train")[0])  # drawn from the train split
    assert torch.equal(again.labelled_x, dm.labelled_x) and not torch.equal(other.labelled_x, dm.labelled_x)


def test_fake_ranks_see_disjoint_shards():
    seen = []
    for rank in (0, 1):
        dm = FakeDataModule()
        dm.trainer = _fake_trainer(rank, world_size=2)
        dm.setup()
        loader = dm.train_dataloader()
        assert len(loader) == 10  # 160 images each, 16 a batch
        seen.append(_rows(torch.cat([x for x, _ in loader])))
    assert len(seen[0]) == len(seen[1]) == 160 and not seen[0] & seen[1]
    assert seen[0] | seen[1] == _rows(dm.split_tensors("train")[0])


def test_batch_size_is_checked_per_rank_at_setup():
    dm = FakeDataModule(batch_size=200)  # 320 training images: one rank's worth, not two ranks'
    dm.trainer = _fake_trainer(rank=1, world_size=2)
    with pytest.raises(GenexpError, match=r"^data.batch_size=200 is larger than the 160 training images \(per rank\)"):
        dm.setup()


def test_fake_one_hot_on_device():
    dm = FakeDataModule(one_hot=True, on_device=True)
    dm.trainer = _fake_trainer()
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 28, 28) and y.shape == (16, 10) and torch.equal(y.sum(1), torch.ones(16))
    assert torch.equal(dm.split_tensors("val", raw=True)[1].argmax(1), dm.split_tensors("val")[1].argmax(1))


def test_fake_info():
    with pytest.raises(GenexpError, match="setup"):
        FakeDataModule().info  # noqa: B018 - the property access is what raises
    dm = _fake()
    info = dm.info
    assert isinstance(info, DataInfo) and (info.name, info.shape, info.n_classes) == ("fake", (1, 28, 28), 10)
    assert len(set(info.class_names)) == 10 and not info.binary
    assert info.mean_pixel == pytest.approx(dm.split_tensors("train", raw=True)[0].mean().item(), abs=1e-6)
    binary = _fake(binarize="static").info
    assert binary.binary and binary.mean_pixel == info.mean_pixel  # of the grey levels, not the binary pixels
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.binary = True


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_train": 0}, "data.n_train=0 must be >= 1"),
        ({"pixel_noise": -0.1}, "data.pixel_noise=-0.1"),
        ({"labelled": 330}, "data.labelled=330 must be a multiple of 10 between 10 and 320"),
        ({"binarize": "otsu"}, "data.binarize='otsu'"),
    ],
)
def test_fake_bad_values_are_one_clear_line(kwargs, match):
    with pytest.raises(GenexpError, match=match):
        FakeDataModule(**kwargs)


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "data").glob("*.yaml")))
def test_data_configs_are_constructor_arguments(name):
    """Every key of every data yaml is a constructor argument (instantiate would fail otherwise)."""
    from tests.conftest import compose_config

    cfg = compose_config(f"data={name}", "seed=3")  # with the yaml's own defaults (fashion_mnist: mnist's)
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    assert isinstance(dm, TensorDataModule) and dm.name == name and dm.hparams.seed == 3
    assert set(cfg.data) - {"_target_"} <= set(dm.hparams)
