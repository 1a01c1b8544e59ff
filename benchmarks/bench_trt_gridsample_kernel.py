"""Time the DAttnGridSample plugin kernel against torch's CUDA grid_sample at DAttention's shapes.

Prints, per shape and dtype, both times, the kernel's achieved bandwidth (bytes it must move: input
read once, grid read, output written) and the ratio torch / kernel, measured side by side in one run.

    python benchmarks/bench_trt_gridsample_kernel.py [--iterations 200] [--dtype fp32 fp16]
"""

import argparse
import itertools
import sys

import torch
import torch.nn.functional as F

BATCHES = (1, 4, 16)
CHANNELS = (256, 512)
MAPS = (20, 40, 80)  # feature-map side; the grid has the map's size, as in DAttention


def time_ms(function, iterations: int) -> float:
    for _ in range(5):
        function()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iterations):
        function()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iterations


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--dtype", nargs="+", default=["fp32", "fp16"], choices=["fp32", "fp16"])
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_trt_gridsample_kernel: no CUDA GPU visible to torch; nothing to measure.", file=sys.stderr)
        return 1

    from dattn.plugin.torch_kernel import load_torch_kernel

    kernel = load_torch_kernel()
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    print(f"{'dtype':5} {'N':>3} {'C':>4} {'map':>5} {'ch/thr':>6} {'kernel ms':>10} {'torch ms':>9} "
          f"{'kernel GB/s':>11} {'torch/kernel':>12}")
    for dtype_name, n, c, side in itertools.product(args.dtype, BATCHES, CHANNELS, MAPS):
        dtype = torch.float16 if dtype_name == "fp16" else torch.float32
        x = torch.randn(n, c, side, side, device="cuda", dtype=dtype)
        # DAttention's grid: reference points plus small offsets, mostly inside the map.
        grid = (torch.rand(n, side, side, 2, device="cuda") * 2.2 - 1.1).to(dtype)
        # DAttention samples with align_corners=True.
        ours = time_ms(lambda: kernel.grid_sample_bilinear(x, grid, True), args.iterations)
        theirs = time_ms(lambda: F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True),
                         args.iterations)
        moved = (x.numel() + grid.numel() + n * c * side * side) * x.element_size()
        per_thread = kernel.channels_per_thread(n, c, side, side)
        print(f"{dtype_name:5} {n:>3} {c:>4} {side:>2}x{side:<2} {per_thread:>6} {ours:>10.4f} {theirs:>9.4f} "
              f"{moved / ours / 1e6:>11.1f} {theirs / ours:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
