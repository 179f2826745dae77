// The single ops, for testing each against its *_ref: all threads cooperate on one tile.
//
// Part of the engine of kernels_impl.h: included there, inside namespace umsnet_fast::cpu::<isa>::{anonymous},
// once per instruction-set build; not a standalone header.

#define UMSNET_TEAM(threads, ...)                \
  _Pragma("omp parallel num_threads(threads)") { \
    FlushDenormals flush;                        \
    Par par;                                     \
    par.tid = omp_get_thread_num();              \
    par.nt = omp_get_num_threads();              \
    __VA_ARGS__                                  \
  }

void linear_op(const float* x, int64_t M, const LinearParams& W, int epi, const float* residual, float* y,
               int threads) {
  UMSNET_TEAM(threads, {
    if (epi == kBiasGelu)
      gemm<kBiasGelu>(x, W.k, M, W, y, W.n, nullptr, 0, par);
    else if (epi == kBiasResidual)
      gemm<kBiasResidual>(x, W.k, M, W, y, W.n, residual, W.n, par);
    else
      gemm<kBias>(x, W.k, M, W, y, W.n, nullptr, 0, par);
  })
}

void layer_norm_op(const float* x, int64_t M, int C, const float* w, const float* b, float eps, float* y, int threads) {
  UMSNET_TEAM(threads, { layer_norm_rows(x, M, C, w, b, eps, y, par); })
}

// Tiles of whole segments (about 96 rows) so that a tile's hidden stays in cache; threads take whole
// tiles, or share the one tile when there are fewer tiles than threads.
void lsr_block_op(float* x, int B, int L, const BlockParams& p, int threads) {
  const int G = (int)imax(1, 96 / imax(1, L));
  const int tiles = (B + G - 1) / G;
  if (tiles < threads) {
    const int64_t M = (int64_t)B * L;
    float* h = falloc(M * p.c);
    float* hid = falloc(M * p.fc1.n);
    UMSNET_TEAM(threads, {
      ModScratch s;
      s.h = h, s.hid = hid, s.tmp = falloc(p.c + 16);
      lsr_block_tile(x, B, L, p, s, par);
      free(s.tmp);
    })
    free(h);
    free(hid);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    FlushDenormals flush;
    const int64_t M = (int64_t)G * L;
    ModScratch s;
    s.h = falloc(M * p.c), s.hid = falloc(M * p.fc1.n), s.tmp = falloc(p.c + 16);
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < tiles; ++t) {
      const int g0 = t * G;
      lsr_block_tile(x + (int64_t)g0 * L * p.c, (int)imin(G, B - g0), L, p, s, Par());
    }
    free(s.h);
    free(s.hid);
    free(s.tmp);
  }
}

void lsr_module_op(const float* x, int B, int L, const ModuleParams& m, float* y, int threads) {
  int64_t act, hid, row;
  module_scratch_size(m, B, L, &act, &hid, &row);
  float* buf = falloc(3 * act + hid);
  const int64_t out_n = (int64_t)B * module_out_length(m, L) * m.dims[m.nstages - 1];
  UMSNET_TEAM(threads, {
    ModScratch s;
    s.x = buf, s.x2 = buf + act, s.h = buf + 2 * act, s.hid = buf + 3 * act, s.tmp = falloc(row + 16);
    const float* out = module_tile(m, x, B, L, s, par);
    int64_t lo, hi;
    par.range(out_n, &lo, &hi);
    for (int64_t i = lo; i < hi; ++i) y[i] = out[i];
    free(s.tmp);
  })
  free(buf);
}

void attention_op(const float* qkv, int B, int T, int d, int heads, float scale, float* out, int threads) {
  UMSNET_TEAM(threads, {
    float* tmp = falloc(attention_tmp_size(T, d, heads));
    attention_rows(qkv, B, T, T, d, heads, scale, out, tmp, par);
    free(tmp);
  })
}

void encoder_layer_op(float* x, int B, int T, int d, const LayerParams& p, int threads) {
  const int64_t M = (int64_t)B * T;
  float* buf = falloc(M * (5 * (int64_t)d + p.fc1.n));
  UMSNET_TEAM(threads, {
    LayerScratch s;
    s.h = buf, s.qkv = buf + M * d, s.att = buf + 4 * M * d, s.hid = buf + 5 * M * d;
    s.tmp = falloc(attention_tmp_size(T, d, p.heads));
    encoder_layer_tile(x, B, T, d, p, s, par);
    free(s.tmp);
  })
  free(buf);
}
