"""Streaming recognition with a slice cache: `UMSNet.stream()` and `StreamPool` (DESIGN.md section 2).

Stage 1 sees each slice alone, so a stream keeps the features of the slices its next windows need and a
hop computes stage 1 of the new slices only, then stages 2-3 (`window_head`) over the cached window:
0.44 of a window's work for UMSNet-A HHAR K=24. Output t is the model on the window that starts at slice
t * hop_slices. Both steps are the backend's own (umsnet_fast.forward.Stages via Backend.stages).

State of one stream (`_StreamState`): per sensor a buffer of samples (rows (n, C_i), channels last, as
the stage-1 slices want them), from the first slice a future window needs to the newest sample, and a
buffer of slice features (rows (F,)) for the same slices. The buffers are preallocated with room for
twice the steady state, so an append only moves the few kept rows back to the front when it reaches
the end; a push bringing more than that doubles a buffer once. Samples of cached slices are kept so
that a change of the model's weights recomputes their features instead of mixing old and new ones.

A pool batches: `step()` runs stage 1 for every new slice of every stream in one call and stages 2-3
for every completed window in another. On CUDA each step is a CUDA graph per bucket of batch sizes
(powers of two; a batch is padded up to its bucket: rows are independent in both steps), captured on
first use and re-captured when the weights change.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch

from .backends import resolve_backend
from .capture import capture_graph, resolve_slice_lengths

__all__ = ["Stream", "StreamPool"]


class _Rows:
    """Rows appended at the back and dropped at the front of a preallocated (capacity, *row) tensor."""

    def __init__(self, row: tuple[int, ...], capacity: int, dtype: torch.dtype, device: torch.device):
        self.data = torch.empty((max(capacity, 1), *row), dtype=dtype, device=device)
        self.start = self.count = 0

    def view(self) -> torch.Tensor:
        return self.data[self.start:self.start + self.count]

    def rows(self, a: int, b: int) -> torch.Tensor:
        """Held rows a .. b-1 (counted from the first held row), one slicing op."""
        return self.data[self.start + a:self.start + b]

    def reserve(self, n: int) -> None:
        """Room for n more rows at the back: move the kept rows to the front, or double the buffer."""
        if self.start + self.count + n <= len(self.data):
            return
        if self.count + n <= len(self.data) and self.start >= self.count:  # front and kept rows do not overlap
            self.data[:self.count].copy_(self.data[self.start:self.start + self.count])
        else:
            new = self.data.new_empty((max(2 * len(self.data), 2 * (self.count + n)), *self.data.shape[1:]))
            new[:self.count].copy_(self.data[self.start:self.start + self.count])
            self.data = new
        self.start = 0

    def append(self, rows: torch.Tensor) -> torch.Tensor:
        """Copy rows (n, *row) to the back; returns the written rows (a view)."""
        n = rows.shape[0]
        self.reserve(n)
        dst = self.data[self.start + self.count:self.start + self.count + n]
        dst.copy_(rows)
        self.count += n
        return dst

    def drop(self, n: int) -> None:
        self.start, self.count = (self.start + n, self.count - n) if n < self.count else (0, 0)

    def clear(self) -> None:
        self.start = self.count = 0


class _StreamState:
    """Buffers and counters of one stream. Slice indices count from the last reset."""

    def __init__(self, runner: _Runner):
        k, hop = runner.num_slices, runner.hop_slices
        # steady state: the slices of one window plus a hop, plus a slice being filled; room for twice that
        self.samples = [_Rows((c,), 2 * (k + hop + 1) * n, runner.dtype, runner.device)
                        for c, n in zip(runner.channels, runner.slice_lengths)]
        self.features = _Rows((runner.feature_width,), 2 * (k + hop), runner.dtype, runner.device)
        self.reset()

    def reset(self) -> None:
        for rows in self.samples:
            rows.clear()
        self.features.clear()
        self.received = [0] * len(self.samples)  # samples per sensor
        self.base = 0       # first slice held in the buffers
        self.done = 0       # slices base .. done-1 have features
        self.next_hop = 0   # index of the next output
        self.generation = -1  # which weights the cached features were computed with

    def complete_slices(self, lengths: Sequence[int]) -> int:
        return min(n // length for n, length in zip(self.received, lengths))


# Without graphs, batches run in chunks of these many slices / windows: the steps run op by op over
# their whole batch, and past ~16 windows the activations leave the L2 cache (cpu backend, UMSNet-A:
# an encoder layer costs 1.6x more per window at batch 256 than at 16 on the 2-core development machine).
_SLICE_CHUNK, _WINDOW_CHUNK = 384, 16


def _in_chunks(fn, rows: int):
    """fn over its inputs' first axis in chunks of `rows`, outputs concatenated."""
    def run(inputs: list[torch.Tensor]) -> torch.Tensor:
        n = inputs[0].shape[0]
        if n <= rows:
            return fn(inputs)
        return torch.cat([fn([x[a:a + rows] for x in inputs]) for a in range(0, n, rows)])
    return run


class _GraphedStep:
    """One step (stage 1 or stages 2-3) as a CUDA graph per bucket of batch sizes (powers of two)."""

    def __init__(self, fn, row_shapes: list[tuple[int, ...]], dtype: torch.dtype, device: torch.device,
                 max_batch: int, warmup: int = 2):
        self.fn, self.row_shapes, self.dtype, self.device = fn, row_shapes, dtype, device
        self.max_batch, self.warmup = max_batch, warmup
        self.entries: dict[int, tuple[list[torch.Tensor], torch.Tensor, object]] = {}

    def _entry(self, bucket: int):
        if bucket not in self.entries:
            inputs = [torch.randn(bucket, *shape, dtype=self.dtype, device=self.device) for shape in self.row_shapes]
            graph, output = capture_graph(lambda: self.fn(inputs), self.device, self.warmup)
            self.entries[bucket] = (inputs, output, graph)
        return self.entries[bucket]

    def __call__(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        n = inputs[0].shape[0]
        outs = []
        for a in range(0, n, self.max_batch):
            size = min(self.max_batch, n - a)
            static, output, graph = self._entry(1 << (size - 1).bit_length())
            for s, x in zip(static, inputs):
                s[:size].copy_(x[a:a + size])
            graph.replay()
            outs.append(output[:size].clone())  # the next replay overwrites the static output
        return outs[0] if len(outs) == 1 else torch.cat(outs)


class _Runner:
    """What a stream and a pool share: the model, geometry, input checks, the two steps, the hop loop."""

    def __init__(self, model, hop_slices: int, slice_length, normalization, dtype, device, backend, graphs,
                 max_graph_batch: int, what: str):
        from .model import UMSNet

        if not isinstance(model, UMSNet):
            raise TypeError(f"{what} needs a umsnet_fast.UMSNet, got {type(model).__module__}."
                            f"{type(model).__name__}; convert a reference model with UMSNet.from_reference(ref)")
        cfg = model.config
        self.model, self.config, self.what = model, cfg, what
        self._check_eval()
        if isinstance(hop_slices, bool) or not isinstance(hop_slices, int) or hop_slices < 1:
            raise ValueError(f"hop_slices must be an int >= 1, got {hop_slices!r}")
        self.hop_slices, self.num_slices = hop_slices, cfg.num_slices
        self.slice_lengths = resolve_slice_lengths(model, slice_length, what)
        self.names = [s.name for s in cfg.sensors]
        self.channels = [s.channels for s in cfg.sensors]
        p = next(model.parameters())
        self.device = torch.device(device) if device is not None else p.device
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.dtype = dtype or p.dtype
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype, got {self.dtype!r}")
        self.backend = resolve_backend(backend or model.backend, self.device, self.dtype)
        self.feature_width = sum(cfg.dims[-1] for _ in cfg.sensors)
        self.normalization = self._normalization(normalization)
        self.graphs = self.device.type == "cuda" if graphs is None else bool(graphs)
        if self.graphs and self.device.type != "cuda":
            raise ValueError(f"graphs=True captures CUDA graphs; this {what} runs on {self.device}")
        if not isinstance(max_graph_batch, int) or max_graph_batch < 1:
            raise ValueError(f"max_graph_batch must be a positive int, got {max_graph_batch!r}")
        self.max_graph_batch = 1 << (max_graph_batch - 1).bit_length()
        self._prepared = None
        self.generation = -1
        self._refresh()

    # -- configuration ----------------------------------------------------------------------------
    def _normalization(self, norm):
        """{sensor: {"mean": [C_i], "std": [C_i]}} (a HAR checkpoint's meta["normalization"]) -> tensors."""
        if norm is None:
            return None
        if not isinstance(norm, Mapping):
            raise TypeError(f"normalization: expected a dict {{sensor name: {{'mean': [...], 'std': [...]}}}}, "
                            f"got {type(norm).__name__}")
        missing = [n for n in self.names if n not in norm]
        extra = [n for n in norm if n not in self.names]
        if missing or extra:
            raise ValueError(f"normalization: expected entries for sensors {self.names}; missing {missing}, "
                             f"unexpected {extra}")
        out = []
        for name, c in zip(self.names, self.channels):
            entry = norm[name]
            try:
                mean = torch.as_tensor(entry["mean"], dtype=torch.float64).flatten()
                std = torch.as_tensor(entry["std"], dtype=torch.float64).flatten()
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"normalization of sensor {name!r}: expected {{'mean': [{c} numbers], "
                                 f"'std': [{c} numbers]}} ({type(e).__name__}: {e})") from None
            if mean.numel() != c or std.numel() != c:
                raise ValueError(f"normalization of sensor {name!r}: expected {c} means and stds, got "
                                 f"{mean.numel()} and {std.numel()}")
            if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
                raise ValueError(f"normalization of sensor {name!r}: means must be finite and stds finite and > 0")
            out.append((mean.to(self.device, self.dtype), std.to(self.device, self.dtype)))
        return out

    def _check_eval(self) -> None:
        if self.model.training:
            raise RuntimeError(f"{self.what} runs the inference forward: put the model in eval mode "
                               "(model.eval()) first")

    def _refresh(self) -> None:
        """Eval mode, and the steps over the current packed weights (new weights: a new generation)."""
        self._check_eval()
        prepared = self.model._weights_for(self.backend, self.device, self.dtype)
        if prepared is self._prepared:
            return
        stages = self.backend.stages(prepared)
        self._prepared, self.generation = prepared, self.generation + 1
        slice_shapes = [(n, c) for n, c in zip(self.slice_lengths, self.channels)]
        if self.graphs:
            self._slice_features = _GraphedStep(stages.slice_features, slice_shapes, self.dtype, self.device,
                                                self.max_graph_batch)
            self._window_head = _GraphedStep(lambda xs: stages.window_head(xs[0]),
                                             [(self.num_slices, self.feature_width)], self.dtype, self.device,
                                             self.max_graph_batch)
        else:
            self._slice_features = _in_chunks(stages.slice_features, _SLICE_CHUNK)
            self._window_head = _in_chunks(lambda xs: stages.window_head(xs[0]), _WINDOW_CHUNK)

    # -- input ------------------------------------------------------------------------------------
    def validate(self, chunk) -> list[torch.Tensor | None]:
        """New samples per sensor -> one (C_i, n_i) tensor or None per sensor, in sensor order. Checks only."""
        if isinstance(chunk, torch.Tensor):
            raise TypeError(f"expected a list of {len(self.names)} tensors (sensors {self.names}) or a dict keyed "
                            f"by sensor name, each (C_i, n_i), got a single tensor of shape {tuple(chunk.shape)}")
        if isinstance(chunk, Mapping):
            unknown = [k for k in chunk if k not in self.names]
            if unknown:
                raise ValueError(f"unknown sensor(s) {unknown}; this model's sensors are {self.names}")
            tensors = [chunk.get(n) for n in self.names]
        elif isinstance(chunk, Sequence) and not isinstance(chunk, (str, bytes)):
            if len(chunk) != len(self.names):
                raise ValueError(f"expected {len(self.names)} entries (sensors {self.names}, None for no new "
                                 f"samples), got {len(chunk)}")
            tensors = list(chunk)
        else:
            raise TypeError(f"expected a list or dict of tensors (sensors {self.names}), got {type(chunk).__name__}")
        for name, c, x in zip(self.names, self.channels, tensors):
            if x is None:
                continue
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"sensor {name!r}: expected a torch.Tensor of shape ({c}, n), got {type(x).__name__}")
            if x.dtype != self.dtype:
                raise TypeError(f"sensor {name!r}: this stream computes in {self.dtype}, got samples of dtype "
                                f"{x.dtype} (convert them, or open the stream with dtype={x.dtype})")
            if x.device != self.device:
                raise ValueError(f"sensor {name!r}: this stream runs on {self.device}, got samples on {x.device}")
            if x.dim() != 2 or x.shape[0] != c:
                raise ValueError(f"sensor {name!r}: expected new samples of shape ({c}, n) (channels, samples), "
                                 f"got {tuple(x.shape)}")
        return tensors

    def append(self, state: _StreamState, tensors: list[torch.Tensor | None]) -> None:
        """Validated samples into the state's buffers, standardised there when the stream has statistics."""
        for i, x in enumerate(tensors):
            if x is None or x.shape[1] == 0:
                continue
            rows = state.samples[i].append(x.t())
            if self.normalization is not None:
                mean, std = self.normalization[i]
                rows.sub_(mean).div_(std)
            state.received[i] += x.shape[1]

    # -- the hop loop -----------------------------------------------------------------------------
    def run(self, states: list[_StreamState], refresh: bool = True) -> list[list[torch.Tensor]]:
        """Stage 1 for the new slices of all states (one call), stages 2-3 for their completed windows
        (one call); per state the logits of its new hops, oldest first. refresh=False: the caller has
        just called _refresh()."""
        if refresh:
            self._refresh()
        k, hop, lengths = self.num_slices, self.hop_slices, self.slice_lengths
        with torch.no_grad():
            jobs = []  # (state, first new slice, end)
            for st in states:
                if st.generation != self.generation:  # new weights: recompute the cached slices' features
                    st.features.clear()
                    st.done, st.generation = st.base, self.generation
                end = st.complete_slices(lengths)
                if end > st.done:
                    jobs.append((st, st.done, end))
            if jobs:
                slices = []
                for i, (length, c) in enumerate(zip(lengths, self.channels)):
                    parts = [st.samples[i].rows((a - st.base) * length, (b - st.base) * length) for st, a, b in jobs]
                    slices.append((parts[0] if len(parts) == 1 else torch.cat(parts)).view(-1, length, c))
                features = self._slice_features(slices)
                row = 0
                for st, a, b in jobs:
                    st.features.append(features if len(jobs) == 1 else features[row:row + b - a])
                    row += b - a
                    st.done = b
            windows, counts = [], []
            for st in states:
                first = st.next_hop * hop
                n = (st.done - first - k) // hop + 1 if st.done - first >= k else 0
                counts.append(n)
                if n:
                    a = first - st.base
                    windows.append(st.features.rows(a, a + k).unsqueeze(0) if n == 1 else
                                   st.features.view()[a:].unfold(0, k, hop)[:n].transpose(1, 2))
                    st.next_hop += n
            logits = self._window_head([windows[0] if len(windows) == 1 else torch.cat(windows)]) if windows else None
            out, row = [], 0
            for st, n in zip(states, counts):
                out.append(list((logits if n == len(logits) else logits[row:row + n]).unbind(0)) if n else [])
                row += n
                keep = min(st.next_hop * hop, st.done)  # the first slice a future window needs
                if keep > st.base:
                    st.features.drop(keep - st.base)
                    for rows, length in zip(st.samples, lengths):
                        rows.drop((keep - st.base) * length)
                    st.base = keep
        return out


class Stream:
    """One stream: `push(chunk)` -> the logits of the hops it completed; `reset()` starts over.

    Made by `UMSNet.stream(hop_slices=1, *, slice_length, ...)`; see its docstring for the options.
    """

    def __init__(self, model, hop_slices: int = 1, *, slice_length=None, normalization=None, dtype=None,
                 device=None, backend=None, graphs=None, max_graph_batch: int = 1024):
        self._runner = _Runner(model, hop_slices, slice_length, normalization, dtype, device, backend, graphs,
                               max_graph_batch, "model.stream()")
        self._state = _StreamState(self._runner)

    hop_slices = property(lambda self: self._runner.hop_slices)
    slice_lengths = property(lambda self: self._runner.slice_lengths)
    dtype = property(lambda self: self._runner.dtype)
    device = property(lambda self: self._runner.device)
    backend = property(lambda self: self._runner.backend.name, doc="the backend the steps run on")

    @property
    def hops(self) -> int:
        """Outputs produced since the last reset."""
        return self._state.next_hop

    def push(self, chunk) -> list[torch.Tensor]:
        """New samples per sensor -> a list with one (num_classes,) logits tensor per completed hop.

        chunk: a list in sensor order (None for a sensor without new samples) or a dict by sensor name
        (absent: none), each a (C_i, n_i) tensor of the stream's dtype and device, any n_i >= 0. Output
        t is the model on the window that starts at slice t * hop_slices. Bad input raises before
        anything is stored.
        """
        tensors = self._runner.validate(chunk)
        self._runner._refresh()  # eval mode: checked before the state changes
        self._runner.append(self._state, tensors)
        return self._runner.run([self._state], refresh=False)[0]

    def reset(self) -> None:
        """Forget every sample and cached feature: the next output is again the window at slice 0."""
        self._state.reset()

    def __repr__(self) -> str:
        r = self._runner
        return (f"Stream(hop_slices={r.hop_slices}, slice_lengths={list(r.slice_lengths)}, K={r.num_slices}, "
                f"backend={r.backend.name!r}, device={str(r.device)!r}, dtype={r.dtype}, hops={self.hops})")


class StreamPool:
    """Many independent streams of one model, computed together.

    pool.push(stream_id, chunk) stores new samples (a new id opens a stream; any hashable id);
    pool.step() -> {stream_id: [logits, ...]} for the streams that completed hops since the last step,
    with stage 1 of every new slice of every stream in one batched call and stages 2-3 of every
    completed window in another; pool.close(stream_id) drops a stream (and samples not yet stepped).
    Options as `UMSNet.stream` (slice_length is required). On CUDA, both calls are CUDA graphs per
    bucket of batch sizes (powers of two up to max_graph_batch; larger batches run in chunks).
    """

    def __init__(self, model, hop_slices: int = 1, *, slice_length=None, normalization=None, dtype=None,
                 device=None, backend=None, graphs=None, max_graph_batch: int = 1024):
        self._runner = _Runner(model, hop_slices, slice_length, normalization, dtype, device, backend, graphs,
                               max_graph_batch, "StreamPool")
        self._streams: dict[Hashable, _StreamState] = {}
        self._pushed: dict[Hashable, None] = {}  # ids pushed since the last step, in order

    hop_slices = property(lambda self: self._runner.hop_slices)
    slice_lengths = property(lambda self: self._runner.slice_lengths)
    dtype = property(lambda self: self._runner.dtype)
    device = property(lambda self: self._runner.device)
    backend = property(lambda self: self._runner.backend.name, doc="the backend the steps run on")

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, stream_id) -> bool:
        return stream_id in self._streams

    @property
    def stream_ids(self) -> list:
        return list(self._streams)

    def push(self, stream_id, chunk) -> None:
        """Store new samples of one stream (see Stream.push for the chunk); nothing is computed here."""
        if not isinstance(stream_id, Hashable):
            raise TypeError(f"stream_id must be hashable (a str, an int, ...), got {type(stream_id).__name__}")
        tensors = self._runner.validate(chunk)
        state = self._streams.get(stream_id)
        if state is None:
            state = self._streams[stream_id] = _StreamState(self._runner)
        self._runner.append(state, tensors)
        self._pushed[stream_id] = None

    def step(self) -> dict:
        """{stream_id: [logits (num_classes,), ...]} of the hops completed since the last step."""
        ids = [i for i in self._pushed if i in self._streams]
        results = self._runner.run([self._streams[i] for i in ids]) if ids else []
        self._pushed.clear()
        return {i: r for i, r in zip(ids, results) if r}

    def close(self, stream_id) -> None:
        """Drop a stream; a ValueError names the open ids when it is not one of them."""
        try:
            del self._streams[stream_id]
        except (KeyError, TypeError):
            shown = list(self._streams)[:10]
            raise ValueError(f"no open stream {stream_id!r} in this pool ({len(self._streams)} open"
                             f"{': ' + ', '.join(map(repr, shown)) if shown else ''}"
                             f"{', ...' if len(self._streams) > 10 else ''})") from None
        self._pushed.pop(stream_id, None)

    def __repr__(self) -> str:
        r = self._runner
        return (f"StreamPool(streams={len(self)}, hop_slices={r.hop_slices}, slice_lengths={list(r.slice_lengths)}, "
                f"K={r.num_slices}, backend={r.backend.name!r}, device={str(r.device)!r}, dtype={r.dtype})")
