"""MNIST (and Fashion-MNIST) in the official IDX format: read with numpy, verify, download with checksums.

IDX (LeCun et al., http://yann.lecun.com/exdb/mnist/): a big-endian header
`0x00 0x00 <dtype=0x08 (uint8)> <ndim>` followed by ndim uint32 sizes, then the data.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pooch

from genexp import GenexpError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IDXSet:
    """One dataset in MNIST's four-file IDX layout: where its files come from and how they verify.

    files: key -> (file stem, md5 of the *decompressed* content, shape (count, *dims)), so an official
        .gz and a recompressed (or raw) copy both verify.
    env: the environment variable naming its folder; system_dirs: folders a system package fills
        (searched after data.root / env); default_dir: where it is downloaded when nothing names a folder.
    """

    title: str
    files: dict[str, tuple[str, str, tuple[int, ...]]]
    mirrors: tuple[str, ...]
    env: str
    default_dir: str
    system_dirs: tuple[tuple[str, str], ...] = ()  # (folder, how to get it there)


# MNIST's four files (key, stem, shape): Fashion-MNIST uses the same names and shapes
LAYOUT = (
    ("train_images", "train-images-idx3-ubyte", (60000, 28, 28)),
    ("train_labels", "train-labels-idx1-ubyte", (60000,)),
    ("test_images", "t10k-images-idx3-ubyte", (10000, 28, 28)),
    ("test_labels", "t10k-labels-idx1-ubyte", (10000,)),
)


def _files(*md5s: str) -> dict[str, tuple[str, str, tuple[int, ...]]]:
    """IDXSet.files of the MNIST layout, given the four md5s in LAYOUT's order."""
    return {key: (stem, md5, shape) for (key, stem, shape), md5 in zip(LAYOUT, md5s, strict=True)}


MNIST = IDXSet(
    title="MNIST",
    files=_files(  # (see ../shared/data/mnist/README.md)
        "6bbc9ace898e44ae57da46a324031adb",
        "a25bea736e30d166cdddb491f175f624",
        "2646ac647ad5339dbf082846283269ea",
        "27ae3e4e09519cfbb04c329615203637",
    ),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    env="GENEXP_DATA_DIR",
    default_dir="data",
)
# Fashion-MNIST (Xiao et al. 2017, github.com/zalandoresearch/fashion-mnist): md5s of the decompressed
# official files (the Debian package dataset-fashion-mnist ships them).
FASHION_MNIST = IDXSet(
    title="Fashion-MNIST",
    files=_files(
        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "9018921c3c673c538a1fc5bad174d6f9",
        "8181f5470baa50b63fa0f6fddb340f0a",
        "15d484375f8d13e6eb1aabb0c3f46965",
    ),
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    env="GENEXP_FASHION_MNIST_DIR",
    default_dir="data/fashion_mnist",
    system_dirs=(("/usr/share/datasets/fashion-mnist", "apt-get install dataset-fashion-mnist"),),
)
DATASETS = {"mnist": MNIST, "fashion_mnist": FASHION_MNIST}
FILES, MIRRORS = MNIST.files, MNIST.mirrors


def spec_of(dataset: str | IDXSet) -> IDXSet:
    if isinstance(dataset, IDXSet):
        return dataset
    if dataset not in DATASETS:
        raise GenexpError(f"data.dataset={dataset!r}: must be one of {', '.join(DATASETS)}")
    return DATASETS[dataset]


def _complete(folder: Path, spec: IDXSet) -> bool:
    return all(_find(folder, stem) for stem, _, _ in spec.files.values())


def resolve_root(root: str | os.PathLike | None = None, dataset: str | IDXSet = "mnist") -> Path:
    """The folder of the dataset's files: data.root, else $<env>; then its system folders (a package's
    copy) if that one lacks them; else the folder to download into (data.root, $<env>, default_dir)."""
    spec = spec_of(dataset)
    if root is None or str(root) == "":
        root = os.environ.get(spec.env) or None
    named = Path(root).expanduser().resolve() if root is not None else None
    for folder in ([named] if named else []) + [Path(d) for d, _ in spec.system_dirs]:
        if _complete(folder, spec):
            return folder
    return named or Path(spec.default_dir).resolve()


def _places(root: Path, spec: IDXSet) -> str:
    """Where a dataset's files were looked for, for an error message."""
    env = os.environ.get(spec.env)
    places = [f"{root} (data.root, else ${spec.env}{'=' + env if env else ' (unset)'}, else ./{spec.default_dir})"]
    places += [f"{d} ({how})" for d, how in spec.system_dirs]
    return "; ".join(places)


# The largest IDX content read (decompressed): MNIST's biggest file is 47 MB; a header or a gzip stream
# claiming more is refused before anything that size is allocated.
MAX_IDX_BYTES = 1 << 28
MAX_IDX_DIMS = 16


def _raw_bytes(path: Path, limit: int = MAX_IDX_BYTES) -> bytes:
    """The (decompressed) content of an IDX file; a GenexpError for anything unreadable, truncated,
    corrupted or larger than `limit` bytes (a gzip bomb is cut off after `limit` + 1 bytes)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read(limit + 1)
        else:
            if path.stat().st_size > limit:
                raise GenexpError(f"cannot read {path}: larger than {limit} bytes, not an MNIST IDX file")
            raw = path.read_bytes()
    except GenexpError:
        raise
    except (OSError, EOFError, zlib.error, ValueError, MemoryError) as e:  # BadGzipFile is an OSError
        raise GenexpError(f"cannot read {path}: {e} (corrupted or truncated file; delete it to re-download)") from e
    if len(raw) > limit:
        raise GenexpError(f"cannot read {path}: more than {limit} bytes uncompressed, not an MNIST IDX file")
    return raw


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into a uint8 array, checking the header against the payload length. Any
    malformed input is a GenexpError; nothing is allocated beyond a view of `raw`."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise GenexpError(f"{source}: not an IDX file (bad magic {bytes(raw[:4]).hex() or 'empty'})")
    if raw[2] != 0x08:
        raise GenexpError(f"{source}: IDX dtype 0x{raw[2]:02x} is not 0x08 (uint8)")
    ndim = raw[3]
    if ndim > MAX_IDX_DIMS:
        raise GenexpError(f"{source}: IDX header claims {ndim} dimensions (at most {MAX_IDX_DIMS} are read)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise GenexpError(f"{source}: truncated IDX header ({len(raw)} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if math.prod(d for d in shape if d) > MAX_IDX_BYTES:  # numpy refuses such a shape even with a 0 in it
        raise GenexpError(f"{source}: IDX header claims shape {shape}, more than {MAX_IDX_BYTES} bytes")
    expected = header + math.prod(shape)  # Python ints: no overflow, whatever the header claims
    if len(raw) != expected:
        raise GenexpError(f"{source}: IDX header says shape {shape} ({expected} bytes) but file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(array: np.ndarray, path: Path) -> None:
    """Inverse of parse_idx (uint8 only); gzip-compressed when the name ends in .gz."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes() + array.tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(raw)


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def read_verified(path: Path, md5: str, shape: tuple[int, ...]) -> np.ndarray:
    raw = _raw_bytes(path)
    array = parse_idx(raw, str(path))
    if array.shape != shape:
        raise GenexpError(f"{path}: shape {array.shape}, expected {shape}")
    digest = hashlib.md5(raw).hexdigest()
    if digest != md5:
        raise GenexpError(f"{path}: md5 of the content is {digest}, expected {md5} (corrupted file; delete it)")
    return array


def _reason(e: Exception) -> str:
    """A short reason for a failed download: 'ConnectionError: connection refused', 'HTTPError: 404 ...'."""
    text = str(e)
    for needle, short in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "no DNS"),
        ("timed out", "timed out"),
        ("IncompleteRead", "connection broken mid-file"),
    ):
        if needle in text:
            return f"{type(e).__name__}: {short}"
    return f"{type(e).__name__}: {text.splitlines()[0][:400] if text else ''}"


def download(root: Path, mirrors=None, timeout: float = 30.0, attempts: int = 2, dataset="mnist") -> None:
    """Fetch the missing files into root, trying each mirror in turn (`attempts` times each).

    Each file goes to a temporary folder inside root (pooch itself writes to a temp name), is
    verified, and only then renamed into place, so root never holds a partial or unverified file.
    """
    spec = spec_of(dataset)
    mirrors = spec.mirrors if mirrors is None else mirrors
    created = not root.exists()  # a folder this call made is removed again if nothing could be put in it
    root.mkdir(parents=True, exist_ok=True)
    for stem, md5, shape in spec.files.values():
        if _find(root, stem):
            continue
        errors = []
        for mirror in [m for m in mirrors for _ in range(attempts)]:
            tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
            try:
                fname = stem + ".gz"
                log.info("downloading %s%s", mirror, fname)
                path = pooch.retrieve(
                    url=mirror.rstrip("/") + "/" + fname,
                    known_hash=None,
                    fname=fname,
                    path=tmp,
                    downloader=pooch.HTTPDownloader(timeout=timeout, progressbar=False),
                )
                read_verified(Path(path), md5, shape)
                os.replace(path, root / fname)  # atomic on the same filesystem
                break
            except Exception as e:  # noqa: BLE001 - any failure means: next mirror
                errors.append(f"{mirror} ({_reason(e)})")
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        else:
            tried = "; ".join(dict.fromkeys(errors))  # each distinct failure once
            if created and not any(root.iterdir()):
                root.rmdir()
            raise GenexpError(
                f"{spec.title} file {stem} not found in {_places(root, spec)}, and its download failed ({tried}); "
                f"put the four official IDX files (.gz or raw) in one of them, or point data.root / {spec.env} at them"
            )


def load_mnist(root=None, download_missing: bool = True, mirrors=None, dataset="mnist") -> dict[str, np.ndarray]:
    """The four arrays (uint8) of `dataset` (mnist | fashion_mnist), verified; `root` as `resolve_root`
    finds it. Downloads what is missing unless download_missing=False."""
    spec = spec_of(dataset)
    root = resolve_root(root, spec)
    missing = [stem for stem, _, _ in spec.files.values() if _find(root, stem) is None]
    if missing and download_missing:
        download(root, mirrors, dataset=spec)
    elif missing:
        raise GenexpError(
            f"{spec.title} files {missing} not found in {_places(root, spec)}; set data.root or {spec.env} to a "
            "folder holding the official IDX files (.gz or raw), or allow data.download=true"
        )
    return {key: _read_once(_find(root, stem), md5, shape) for key, (stem, md5, shape) in spec.files.items()}


_READ: dict[tuple, np.ndarray] = {}


def _read_once(path: Path, md5: str, shape: tuple[int, ...]) -> np.ndarray:
    """read_verified, once per process for a file unchanged since (path, size, mtime): tests and sweeps
    set up many datamodules, and decompressing and hashing 47 MB each time is most of a small run."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, md5)
    if key not in _READ:
        array = read_verified(path, md5, shape)
        array.flags.writeable = False  # shared: setup() copies before use
        _READ[key] = array
    return _READ[key]
