"""The scale sequence of torch.amp.GradScaler's update for given found-inf flags.

The engine's train.LossScaler is checked against this (LossScalerTest). Input: a JSON file
{"cases": [{"init_scale", "growth_factor", "backoff_factor", "growth_interval", "found_inf": [..],
"output"}]}; for each case writes {"source", "scale": [..], "growth_tracker": [..]} to "output",
the state after each step.

Where this torch has the CPU kernel GradScaler.update() calls (torch._amp_update_scale_, on CPU
since torch 2.3), it is used as it is; otherwise (Debian's torch 1.13 has it for CUDA only) its
CUDA kernel (aten/src/ATen/native/cuda/AmpKernels.cu, amp_update_scale_cuda_kernel) is followed
line by line on float32 tensors. Shares no code with the engine.
"""

import json
import sys

import torch


def kernel_available():
    try:
        s = torch.full((1,), 1.0, dtype=torch.float32)
        g = torch.zeros((1,), dtype=torch.int32)
        torch._amp_update_scale_(s, g, torch.zeros((1,)), 2.0, 0.5, 2)
        return True
    except Exception:
        return False


def update_as_cuda_kernel(scale, tracker, found_inf, growth_factor, backoff_factor, interval):
    # amp_update_scale_cuda_kernel: float* current_scale, int* growth_tracker, double factors.
    if found_inf:
        scale = torch.tensor([scale.item() * backoff_factor], dtype=torch.float32)
        tracker = 0
    else:
        successful = tracker + 1
        if successful == interval:
            new_scale = torch.tensor([scale.item() * growth_factor], dtype=torch.float32)
            if torch.isfinite(new_scale).all():
                scale = new_scale
            tracker = 0
        else:
            tracker = successful
    return scale, tracker


def run(case, native):
    scale = torch.full((1,), case["init_scale"], dtype=torch.float32)
    tracker = 0
    scales, trackers = [], []
    g = torch.zeros((1,), dtype=torch.int32)
    for flag in case["found_inf"]:
        if native:
            g.fill_(tracker)
            torch._amp_update_scale_(
                scale,
                g,
                torch.full((1,), 1.0 if flag else 0.0),
                case["growth_factor"],
                case["backoff_factor"],
                case["growth_interval"],
            )
            tracker = int(g.item())
        else:
            scale, tracker = update_as_cuda_kernel(
                scale,
                tracker,
                flag,
                case["growth_factor"],
                case["backoff_factor"],
                case["growth_interval"],
            )
        scales.append(float(scale.item()))
        trackers.append(tracker)
    return scales, trackers


def main():
    request = json.load(open(sys.argv[1]))
    native = kernel_available()
    for case in request["cases"]:
        scales, trackers = run(case, native)
        with open(case["output"], "w") as f:
            json.dump(
                {
                    "source": "torch._amp_update_scale_" if native else "AmpKernels.cu transcribed",
                    "scale": scales,
                    "growth_tracker": trackers,
                },
                f,
            )


if __name__ == "__main__":
    main()
