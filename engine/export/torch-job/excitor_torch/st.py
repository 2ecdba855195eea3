"""safetensors files: Hugging Face's `safetensors` package when it is installed (requirements.txt),
else the format read and written here (an 8-byte little-endian header length, a JSON header, the
raw tensor bytes), for machines whose Python has torch but no safetensors (Debian's python3-torch).

Writes are atomic: a temporary file in the same folder, then a rename, so a kill at any moment
leaves the previous file or the new one, never half of one.
"""
import json
import os
import struct
from typing import Dict, List, Optional, Tuple

import torch

try:
    from safetensors import safe_open as _safe_open
    from safetensors.torch import save_file as _save_file
except ImportError:  # Debian ships no python3-safetensors
    _safe_open = None
    _save_file = None

_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}
_NAMES = {v: k for k, v in _DTYPES.items()}


def read_header(path: str) -> Tuple[dict, dict, int]:
    """(tensor entries, __metadata__, offset of the data) of a safetensors file."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than 8 bytes)")
        (n,) = struct.unpack("<Q", head)
        size = os.fstat(f.fileno()).st_size
        if n > size - 8:
            raise ValueError(f"{path}: not a safetensors file (header length {n} exceeds the file)")
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__", None) or {}
    return header, meta, 8 + n


def metadata(path: str) -> Dict[str, str]:
    return read_header(path)[1]


def load(path: str) -> Dict[str, torch.Tensor]:
    """Every tensor of one file, as CPU tensors of their stored dtype."""
    index = TensorIndex([path])
    return {name: index.get(name) for name in index.where}


def save(path: str, tensors: Dict[str, torch.Tensor], meta: Optional[Dict[str, str]] = None) -> None:
    """Writes `tensors` (in the given order) with string metadata, atomically."""
    tmp = f"{path}.tmp-{os.getpid()}"
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    if _save_file is not None:
        _save_file(cpu, tmp, metadata=meta)
    else:
        header: dict = {"__metadata__": dict(meta)} if meta else {}
        offset = 0
        for name, t in cpu.items():
            n = t.numel() * t.element_size()
            header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
            offset += n
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned, as the format recommends
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            for t in cpu.values():
                f.write(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


class TensorIndex:
    """The tensors of safetensors files, read one by one on demand: a rank loads one layer at a time."""

    @staticmethod
    def of_model(folder: str) -> "TensorIndex":
        """A Hugging Face folder's model.safetensors, or its shards through model.safetensors.index.json."""
        index = os.path.join(folder, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index, encoding="utf-8") as f:
                return TensorIndex([os.path.join(folder, n) for n in sorted(set(json.load(f)["weight_map"].values()))])
        if os.path.exists(os.path.join(folder, "model.safetensors")):
            return TensorIndex([os.path.join(folder, "model.safetensors")])
        raise SystemExit(f"{folder}: no model.safetensors or model.safetensors.index.json; the job reads Hugging Face safetensors checkpoints")

    def __init__(self, files: List[str]):
        self.where: Dict[str, Tuple[str, dict, int]] = {}
        for path in files:
            header, _, start = read_header(path)
            for t, e in header.items():
                self.where[t] = (path, e, start)

    def shape(self, name: str):
        return tuple(self.where[name][1]["shape"])

    def get(self, name: str) -> torch.Tensor:
        path, e, start = self.where[name]
        if _safe_open is not None:
            with _safe_open(path, framework="pt") as f:
                return f.get_tensor(name)
        if e["dtype"] not in _DTYPES:
            raise SystemExit(f"{path}: tensor {name} has dtype {e['dtype']}, which this reader does not know")
        a, b = e["data_offsets"]
        with open(path, "rb") as f:
            f.seek(start + a)
            raw = bytearray(f.read(b - a))
        dtype = _DTYPES[e["dtype"]]
        return (torch.frombuffer(raw, dtype=dtype) if b > a else torch.empty(0, dtype=dtype)).reshape(e["shape"])
