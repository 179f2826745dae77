"""umsnet_fast.bench: the latency and throughput suite behind `umsnet-fast bench` (see bench/README.md).

cli.py      `umsnet-fast bench`
common.py   dtype names and the commit, shared by every benchmark

timing.py   the shared timing helper (CPU perf_counter, CUDA events; median / p90 / p99)
engines.py  what is compared: eager reference, the fast model per backend (and captured on CUDA),
            torch.compile modes, ONNX Runtime
runner.py   the run: engines x dtypes x batch sizes in one process, JSON rewritten after every cell
report.py   machine and versions, the JSON file, the table, the plot, the performance targets
stream.py   `umsnet-fast bench --stream`: the slice cache (stream / pool) against the window forward
kernels_triton.py  per-kernel Triton benchmarks (`umsnet-fast bench --kernels`)
device_check.sh  the GPU machine's check (install, CUDA build, smoke, GPU benchmark, GPU tests), --dry-run here;
                 its steps in device_check_steps.txt, its Python half (smoke, plans, table) in device_check.py
"""
