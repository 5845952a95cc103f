"""Writes ../resources/fixture.safetensors with nothing but the standard library.

An implementation of the format (https://huggingface.co/docs/safetensors, "Format") that shares
no code with the Java reader, used as its reference. Values are exactly representable in their
dtypes, so the expected numbers in SafetensorsFileTest are exact.

    /usr/bin/python3 services/engine/src/test/python/write_safetensors_fixture.py
"""
import json
import os
import struct

tensors = [
    # name, dtype, shape, raw little-endian bytes
    ("encoder.layer.0.weight", "F32", [2, 3], struct.pack("<6f", 1.0, -2.0, 0.5, 3.25, -0.125, 100.0)),
    ("encoder.layer.0.half", "F16", [4], struct.pack("<4e", 0.5, -2.25, 1024.0, 6.103515625e-05)),
    # bfloat16 is the upper half of a float32.
    ("head.bf16", "BF16", [3], b"".join(struct.pack("<f", v)[2:] for v in (1.0, -3.5, 3.140625))),
    ("position_ids", "I64", [1, 2], struct.pack("<2q", 0, 511)),
]
header = {"__metadata__": {"format": "pt", "source": "tuneline test"}}
offset = 0
for name, dtype, shape, raw in tensors:
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
    offset += len(raw)
text = json.dumps(header).encode("utf-8")
text += b" " * ((8 - len(text) % 8) % 8)  # the format allows trailing spaces for alignment
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "..", "resources", "fixture.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for _, _, _, raw in tensors:
        f.write(raw)
print("wrote", offset, "bytes of data")
