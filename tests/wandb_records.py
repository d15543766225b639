"""Read the records of an offline W&B run file (what `wandb sync` uploads), to check what a run logged.

Format (wandb's datastore): a 7-byte header ':W&B' + magic + version, then LevelDB-log blocks of
32 KiB holding chunks `crc32 (4) | length (2, little endian) | type (1: full, 2: first, 3: middle,
4: last)`, each record a serialized `wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import struct
from pathlib import Path

BLOCK, HEADER = 32768, 7


def records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, parts = HEADER, []
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # block trailer too small for a chunk header
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:
            break
        parts.append(data[pos + HEADER : pos + HEADER + length])
        pos += HEADER + length
        if kind in (1, 4):  # full record, or the last chunk of one
            record = pb.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            yield record


def logged(run_dir: Path) -> dict:
    """{'config': set of config keys, 'history': set of logged keys, 'files': names under files/}."""
    (wandb_file,) = Path(run_dir).glob("run-*.wandb")
    out = {"config": set(), "history": set(), "summary": set()}
    for r in records(wandb_file):
        kind = r.WhichOneof("record_type")
        if kind == "history":
            out["history"] |= {i.key or "/".join(i.nested_key) for i in r.history.item}
        elif kind == "config":
            out["config"] |= {i.key or "/".join(i.nested_key) for i in r.config.update}
        elif kind == "summary":
            out["summary"] |= {i.key or "/".join(i.nested_key) for i in r.summary.update}
    out["files"] = {
        p.relative_to(run_dir / "files").as_posix() for p in (Path(run_dir) / "files").rglob("*") if p.is_file()
    }
    return out
