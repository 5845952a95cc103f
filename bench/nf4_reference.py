#!/usr/bin/env python3
"""An independent NF4 reference for the engine's io.tuneline.engine.quant (no shared code).

Implements bitsandbytes' 4-bit NF4 quantization (with and without double quantization) in plain
PyTorch, from bitsandbytes' own source (snapshot 0.50.2.dev0, commit 95f9af30):
  - bitsandbytes/functional.py   get_4bit_type("nf4"), create_dynamic_map, quantize_4bit,
                                 dequantize_4bit, QuantState.as_dict / from_dict
  - bitsandbytes/backends/default/ops.py  quantize_4bit (bucketize on midpoints, packing)
  - csrc/kernels.cu              kQuantizeBlockwise, dQuantizeNF4 (decision tree), dQuantize
                                 (8-bit binary search), kDequantizeBlockwise
  - bitsandbytes/utils.py        pack_dict_to_tensor (json.dumps of the non-tensor state)
Safetensors files are read and written with struct + json + torch.frombuffer only.

  apt-get install python3-torch
  python3 bench/nf4_reference.py generate DIR
      writes DIR/inputs.safetensors (test tensors; metadata: blocksize and double quant per
      tensor), DIR/expected.safetensors (packed codes, absmax, 8-bit codes, nested absmax,
      offset, dequantized values, the dynamic map) and DIR/bnb_state_dict.safetensors
      (bitsandbytes' Linear4bit state-dict layout of every input)
  python3 bench/nf4_reference.py check FILE DIR
      reads FILE, a 4-bit state dict written by someone else, checks it has bitsandbytes'
      layout and holds exactly what this reference computes for DIR/inputs.safetensors
"""
import json
import struct
import sys
from fractions import Fraction

import torch

# bitsandbytes/functional.py get_4bit_type("nf4") (= nf4_dequantization_lut in csrc/kernels.cu)
NF4 = torch.tensor(
    [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
     -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
     0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
     0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0],
    dtype=torch.float32)

# backends/default/ops.py _get_4bit_quantize_bounds: the float32 midpoints between codes.
NF4_MIDPOINTS = (NF4[:-1] + NF4[1:]) / 2

# csrc/kernels.cu dQuantizeNF4: the decision tree's thresholds, ascending, as written there.
KERNEL_THRESHOLD_LITERALS = [
    "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
    "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476",
    "0.03979014977812767", "0.1202552504837513", "0.2035212516784668", "0.2920137718319893",
    "0.3893125355243683", "0.5016634166240692", "0.6427869200706482", "0.8614784181118011"]


def float_literal(text):
    """A C 'f' literal: the decimal rounded once, directly, to the nearest float32 (ties to
    even), as nvcc does; float(text) would round twice (to double, then to float32)."""
    exact = Fraction(text)
    f = struct.unpack("<f", struct.pack("<f", float(text)))[0]
    bits = struct.unpack("<I", struct.pack("<f", f))[0]
    candidates = [struct.unpack("<f", struct.pack("<I", b))[0] for b in (bits - 1, bits, bits + 1)]
    return min(candidates, key=lambda c: (abs(Fraction(c) - exact), struct.unpack("<I", struct.pack("<f", c))[0] & 1))


KERNEL_THRESHOLDS = torch.tensor([float_literal(t) for t in KERNEL_THRESHOLD_LITERALS],
                                 dtype=torch.float32)


def create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    """bitsandbytes/functional.py create_dynamic_map, as it stands there."""
    data = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        fraction_items = int(
            2 ** (i + non_sign_bits - max_exponent_bits) + 1
            if signed
            else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1,
        )
        boundaries = torch.linspace(0.1, 1, fraction_items, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    if additional_items > 0:
        boundaries = torch.linspace(0.1, 1, additional_items + 1, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data.append(0)
    data.append(1.0)
    assert len(data) == 2 ** total_bits
    for _ in range(256 - len(data)):
        data.append(0)
    data.sort()
    return torch.tensor(data, dtype=torch.float32)


DYNAMIC = create_dynamic_map()


def blocks_of(x, blocksize):
    """Flat fp32 values cut into (blocks, blocksize), the tail padded with the 0.0 the kernels
    load for missing items (kQuantizeBlockwise: Load(..., valid_items, 0.0f))."""
    n = x.numel()
    nb = -(-n // blocksize)
    padded = torch.zeros(nb * blocksize, dtype=torch.float32)
    padded[:n] = x
    return padded.view(nb, blocksize)


def quantize_nf4(tensor, blocksize):
    """Packed codes (uint8, [ceil(n/2), 1]) and fp32 absmax per block."""
    x = tensor.reshape(-1).float()
    n = x.numel()
    blocks = blocks_of(x, blocksize)
    absmax = blocks.abs().max(dim=1).values
    # kernels.cu: smem_absmax_value = 1.0f / local_abs_max; values are multiplied by it.
    scale = 1.0 / absmax
    scaled = (blocks * scale[:, None]).reshape(-1)
    # The kernel's tree with strict '>' is bucketize(right=False) on its thresholds: a value on
    # a threshold takes the lower code. Four of the thresholds are one float32 step away from
    # the midpoints bitsandbytes' PyTorch fallback bucketizes on (NF4_MIDPOINTS); the kernel's
    # are used. Its NaN (0 * inf in an all-zero block) falls through the tree to code 0.
    codes = torch.bucketize(scaled, KERNEL_THRESHOLDS)
    codes[torch.isnan(scaled)] = 0
    codes = codes[: n + (n % 2)].to(torch.uint8)
    packed = ((codes[0::2] << 4) | codes[1::2]).unsqueeze(1)
    return packed, absmax


def quantize_8bit_dynamic(x, blocksize):
    """kernels.cu kQuantizeBlockwise<General8bit> with dQuantize<0>: 8-bit codes and absmax."""
    n = x.numel()
    blocks = blocks_of(x, blocksize)
    absmax = blocks.abs().max(dim=1).values
    scaled = (blocks * (1.0 / absmax)[:, None]).reshape(-1)[:n]
    return dquantize(DYNAMIC, scaled).to(torch.uint8), absmax


def dquantize(code, x):
    """kernels.cu dQuantize<0> (the non-stochastic branch), vectorised over x."""
    pivot = torch.full(x.shape, 127, dtype=torch.long)
    upper_pivot = torch.full(x.shape, 255, dtype=torch.long)
    lower_pivot = torch.zeros(x.shape, dtype=torch.long)
    lower = torch.full(x.shape, -1.0)
    upper = torch.full(x.shape, 1.0)
    val = code[pivot]
    i = 64
    while i > 0:
        right = x > val
        lower_pivot = torch.where(right, pivot, lower_pivot)
        lower = torch.where(right, val, lower)
        upper_pivot = torch.where(right, upper_pivot, pivot)
        upper = torch.where(right, upper, val)
        pivot = torch.where(right, pivot + i, pivot - i)
        val = code[pivot]
        i >>= 1
    upper = torch.where(upper_pivot == 255, code[255].expand(x.shape), upper)
    lower = torch.where(lower_pivot == 0, code[0].expand(x.shape), lower)
    right = x > val
    up = torch.where(x > (upper + val) * 0.5, upper_pivot, pivot)
    down = torch.where(x < (lower + val) * 0.5, lower_pivot, pivot)
    return torch.where(right, up, down)


def quantize_4bit(tensor, blocksize, double_quant):
    """functional.py quantize_4bit(quant_type="nf4", compress_statistics=double_quant)."""
    packed, absmax = quantize_nf4(tensor, blocksize)
    state = {"absmax": absmax, "blocksize": blocksize}
    if double_quant:
        offset = absmax.mean()
        qabsmax, nested_absmax = quantize_8bit_dynamic(absmax - offset, 256)
        state.update(qabsmax=qabsmax, nested_absmax=nested_absmax, offset=offset)
    return packed, state


def dequantize_4bit(packed, state, n):
    """functional.py dequantize_4bit: absmax rebuilt (code[q] * nested absmax + offset), then
    code[nibble] * absmax, all float32."""
    if "qabsmax" in state:
        q = state["qabsmax"].long()
        nested = state.get("nested_map", DYNAMIC)[q] * state["nested_absmax"].repeat_interleave(256)[: q.numel()]
        absmax = nested + state["offset"]
    else:
        absmax = state["absmax"]
    p = packed.reshape(-1)
    codes = torch.stack([p >> 4, p & 0x0F], dim=1).reshape(-1)[:n].long()
    per_value = absmax.repeat_interleave(state["blocksize"])[:n]
    return NF4[codes] * per_value, absmax


# ----- safetensors with struct + json ------------------------------------------------------
DTYPES = {"F32": (torch.float32, 4), "BF16": (torch.bfloat16, 2), "F16": (torch.float16, 2),
          "U8": (torch.uint8, 1), "I64": (torch.int64, 8)}
TORCH_TO_ST = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
               torch.uint8: "U8", torch.int64: "I64"}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    fmt = {torch.float32: "f", torch.int16: "h", torch.uint8: "B", torch.int64: "q"}[t.dtype]
    values = t.reshape(-1).tolist()
    return struct.pack("<%d%s" % (len(values), fmt), *values)


def write_safetensors(path, tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        data = tensor_bytes(t)
        header[name] = {"dtype": TORCH_TO_ST[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    raw = json.dumps(header).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for c in chunks:
            f.write(c)


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + length].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data = bytearray(blob[8 + length:])
    tensors = {}
    for name, entry in header.items():
        dtype, size = DTYPES[entry["dtype"]]
        begin, end = entry["data_offsets"]
        count = (end - begin) // size
        t = torch.frombuffer(data, dtype=dtype, count=count, offset=begin) if count else \
            torch.empty(0, dtype=dtype)
        tensors[name] = (entry["dtype"], t.reshape(entry["shape"]).clone())
    return tensors, metadata


# ----- bitsandbytes' state-dict layout -----------------------------------------------------
def torch_dtype_name(dtype):
    return str(dtype).strip("torch.")  # QuantState.as_dict, as written there


def state_dict_entries(name, original, packed, state):
    """Linear4bit._save_to_state_dict + QuantState.as_dict(packed=True) for one weight."""
    out = {name: packed, name + ".absmax": state.get("qabsmax", state["absmax"]),
           name + ".quant_map": NF4.clone()}
    non_tensor = {"quant_type": "nf4", "blocksize": state["blocksize"],
                  "dtype": torch_dtype_name(original.dtype), "shape": tuple(original.shape)}
    if "qabsmax" in state:
        out[name + ".nested_absmax"] = state["nested_absmax"]
        out[name + ".nested_quant_map"] = DYNAMIC.clone()
        non_tensor.update(nested_blocksize=256, nested_dtype="float32",
                          nested_offset=state["offset"].item())
    # utils.py pack_dict_to_tensor
    out[name + ".quant_state.bitsandbytes__nf4"] = torch.tensor(
        list(json.dumps(non_tensor).encode("utf-8")), dtype=torch.uint8)
    return out


def cases():
    """Test tensors: (name, tensor, blocksize, double quant)."""
    g = torch.Generator().manual_seed(20261202)
    randn = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    hand = torch.zeros(3, 64)
    # Row 0: absmax exactly 1, then every decision threshold and its float32 neighbours, so
    # ties and near-ties are pinned; row 1: an all-zero block; row 2: random.
    hand[0, 0] = 1.0
    thresholds = KERNEL_THRESHOLDS
    hand[0, 1:16] = thresholds
    hand[0, 16:31] = torch.nextafter(thresholds, torch.full_like(thresholds, 2.0))
    hand[0, 31:46] = torch.nextafter(thresholds, torch.full_like(thresholds, -2.0))
    hand[0, 46:61] = NF4_MIDPOINTS  # where the kernel and the PyTorch fallback disagree
    hand[0, 61:64] = torch.tensor([-1.0, -0.5, 0.25])
    hand[2] = randn(64)
    return [
        ("m.a.weight", randn(64, 96) * 0.02, 64, False),
        ("m.b.weight", randn(37, 41), 64, False),          # 1517 values: odd, a partial block
        ("m.c.weight", randn(300, 257) * 0.05, 64, True),   # 1205 blocks: 5 nested, last partial
        ("m.d.weight", randn(33, 65), 128, True),           # odd, partial block, blocksize 128
        ("m.e.weight", randn(512, 512) * 0.01, 256, False),
        ("m.f.weight", hand, 64, True),                     # ties and an all-zero block
        ("m.g.weight", (randn(48, 80) * 0.03).to(torch.bfloat16), 64, True),
        ("m.h.weight", randn(3), 64, True),                 # three values: one partial block
        ("m.i.weight", randn(4096, 64) * 0.02, 64, True),   # 4096 blocks: 16 full nested blocks
    ]


def generate(out_dir):
    differ = (NF4_MIDPOINTS != KERNEL_THRESHOLDS).nonzero().reshape(-1).tolist()
    print("dQuantizeNF4 thresholds that are not the float32 midpoints: %s" % differ)
    inputs, expected, bnb, metadata = {}, {"dynamic_map": DYNAMIC}, {}, {}
    for name, t, blocksize, dq in cases():
        inputs[name] = t
        metadata[name] = "%d,%s" % (blocksize, "true" if dq else "false")
        packed, state = quantize_4bit(t, blocksize, dq)
        deq, absmax_used = dequantize_4bit(packed, state, t.numel())
        expected[name + ".packed"] = packed
        expected[name + ".absmax"] = state["absmax"]
        expected[name + ".absmax_used"] = absmax_used
        expected[name + ".dequantized"] = deq.reshape(t.shape)
        if dq:
            expected[name + ".qabsmax"] = state["qabsmax"]
            expected[name + ".nested_absmax"] = state["nested_absmax"]
            expected[name + ".offset"] = state["offset"].reshape(1)
            # The binary search of dQuantize must agree with a nearest-value search.
            centred = state["absmax"] - state["offset"]
            nb = state["nested_absmax"].repeat_interleave(256)[: centred.numel()]
            scaled = centred * (1.0 / nb)
            nearest = (scaled[:, None] - DYNAMIC[None, :]).abs().argmin(dim=1)
            bad = (DYNAMIC[nearest] - scaled).abs() < (DYNAMIC[state["qabsmax"].long()] - scaled).abs()
            assert not bad[~torch.isnan(scaled)].any(), "dQuantize did not pick the nearest code"
        bnb.update(state_dict_entries(name, t, packed, state))
    write_safetensors(out_dir + "/inputs.safetensors", inputs, metadata)
    write_safetensors(out_dir + "/expected.safetensors", expected)
    write_safetensors(out_dir + "/bnb_state_dict.safetensors", bnb, {"format": "pt"})
    print("wrote %d cases to %s" % (len(inputs), out_dir))


def check(path, in_dir):
    """Reads a foreign 4-bit state dict as bitsandbytes' QuantState.from_dict would and checks
    it against this reference's own quantization of the inputs."""
    tensors, _ = read_safetensors(path)
    inputs, metadata = read_safetensors(in_dir + "/inputs.safetensors")
    problems = []
    suffix = ".quant_state.bitsandbytes__nf4"
    names = [k[: -len(suffix)] for k in tensors if k.endswith(suffix)]
    if sorted(names) != sorted(inputs):
        problems.append("quantized weights %s, expected %s" % (sorted(names), sorted(inputs)))
    valid_qs_keys = {"absmax", "quant_map", "nested_absmax", "nested_quant_map", "quant_state",
                     "quant_type", "blocksize", "dtype", "shape", "nested_blocksize",
                     "nested_dtype", "nested_offset"}
    for name in names:
        st_dtype, original = inputs[name]
        blocksize, dq = metadata[name].split(",")
        blocksize, dq = int(blocksize), dq == "true"
        mine_packed, mine = quantize_4bit(original, blocksize, dq)
        n = original.numel()
        _, qs_bytes = tensors[name + suffix]
        qs = json.loads(bytes(qs_bytes.tolist()).decode("utf-8"))
        keys = ["quant_type", "blocksize", "dtype", "shape"]
        if dq:
            keys += ["nested_blocksize", "nested_dtype", "nested_offset"]
        if list(qs) != keys:
            problems.append("%s: quant state keys %s, bitsandbytes writes %s" % (name, list(qs), keys))
        own = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
        if not {k.split(".")[-1] for k in own if not k.startswith("quant_state.")} <= valid_qs_keys:
            problems.append("%s: keys outside QuantState.valid_qs_keys: %s" % (name, sorted(own)))
        if qs.get("quant_type") != "nf4" or qs.get("blocksize") != blocksize:
            problems.append("%s: quant_type/blocksize %s" % (name, qs))
        if qs.get("dtype") != torch_dtype_name(original.dtype):
            problems.append("%s: dtype %s, original is %s" % (name, qs.get("dtype"), original.dtype))
        if qs.get("shape") != list(original.shape):
            problems.append("%s: shape %s, original %s" % (name, qs.get("shape"), list(original.shape)))
        p_dtype, packed = tensors[name]
        if p_dtype != "U8" or list(packed.shape) != [(n + 1) // 2, 1]:
            problems.append("%s: packed %s %s, bitsandbytes stores U8 [%d, 1]"
                            % (name, p_dtype, list(packed.shape), (n + 1) // 2))
        elif not torch.equal(packed, mine_packed):
            diff = (packed != mine_packed).sum().item()
            problems.append("%s: %d packed bytes differ" % (name, diff))
        qm_dtype, quant_map = own["quant_map"]
        if qm_dtype != "F32" or not torch.equal(quant_map, NF4):
            problems.append("%s: quant_map is not the NF4 table" % name)
        a_dtype, absmax = own["absmax"]
        state = {"blocksize": blocksize}
        if dq:
            if a_dtype != "U8" or not torch.equal(absmax, mine["qabsmax"]):
                problems.append("%s: 8-bit absmax codes differ (%s)" % (name, a_dtype))
            if qs.get("nested_blocksize") != 256 or qs.get("nested_dtype") != "float32":
                problems.append("%s: nested settings %s" % (name, qs))
            offset = torch.tensor(float(qs["nested_offset"]), dtype=torch.float32)
            if abs(offset.item() - mine["offset"].item()) > 2e-7 * max(1.0, abs(mine["offset"].item())):
                problems.append("%s: offset %r, reference %r" % (name, offset.item(), mine["offset"].item()))
            _, nested_absmax = own["nested_absmax"]
            if not torch.allclose(nested_absmax, mine["nested_absmax"], rtol=1e-6, atol=0):
                problems.append("%s: nested absmax differs" % name)
            nm_dtype, nested_map = own["nested_quant_map"]
            # create_dynamic_map's last bits depend on torch.linspace's build (vectorised, fused
            # or not): the stored map must be that map to float32 rounding, and is what
            # dequantizes, as in bitsandbytes' dequantize_blockwise(code=state2.code).
            if nm_dtype != "F32" or list(nested_map.shape) != [256] or \
                    not torch.allclose(nested_map, DYNAMIC, rtol=2.5e-7, atol=0):
                problems.append("%s: nested_quant_map is not create_dynamic_map()" % name)
            state.update(qabsmax=absmax, nested_absmax=nested_absmax, offset=offset,
                         nested_map=nested_map)
        else:
            if a_dtype != "F32" or not torch.equal(absmax, mine["absmax"]):
                problems.append("%s: absmax differs (%s)" % (name, a_dtype))
            state["absmax"] = absmax
        deq, absmax_used = dequantize_4bit(packed, state, n)
        x = original.reshape(-1).float()
        per_value = absmax_used.repeat_interleave(blocksize)[:n]
        true_absmax = mine["absmax"].repeat_interleave(blocksize)[:n]
        bound = per_value.abs() * (NF4[1] - NF4[0]).item() / 2 + (per_value - true_absmax).abs()
        excess = ((x - deq).abs() - bound * (1 + 1e-6) - 1e-30)
        if (excess > 0).any():
            problems.append("%s: %d values beyond NF4's error bound" % (name, (excess > 0).sum().item()))
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print("OK %d weights in bitsandbytes' layout, bit-exact" % len(names))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "generate":
        generate(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        print(__doc__)
        sys.exit(2)
