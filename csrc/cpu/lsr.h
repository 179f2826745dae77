// LSR block and LSR module on a tile of G segments.
//
// Part of the engine of kernels_impl.h: included there, inside namespace umsnet_fast::cpu::<isa>::{anonymous},
// once per instruction-set build; not a standalone header.

struct ModScratch {
  float *x = nullptr, *x2 = nullptr, *h = nullptr, *hid = nullptr;  // shared by a cooperative team
  float* tmp = nullptr;                                             // one row, per thread
};

// x (G * L, C) in place.
void lsr_block_tile(float* x, int G, int L, const BlockParams& p, const ModScratch& s, const Par& par) {
  const int64_t M = (int64_t)G * L;
  const int C = p.c, H = p.fc1.n;
  dwconv_ln(x, s.h, G, L, p, s.tmp, par);
  gemm<kBiasGelu>(s.h, C, M, p.fc1, s.hid, H, nullptr, 0, par);
  gemm<kBiasResidual>(s.hid, H, M, p.fc2, x, C, x, C, par);
}

// The mean over each segment's L rows of the block's output, (G, C) rows of `out` at stride ldo, without
// the block's output itself: mean_t(x + fc2(g_t)) = mean_t(x) + fc2(mean_t(g_t)) as fc2 is affine, so
// fc2 runs on G rows instead of G * L. x is left as scratch.
void lsr_block_mean_tile(float* x, int G, int L, const BlockParams& p, const ModScratch& s, float* out, int64_t ldo,
                         const Par& par) {
  const int64_t M = (int64_t)G * L;
  const int C = p.c, H = p.fc1.n;
  dwconv_ln(x, s.h, G, L, p, s.tmp, par);
  gemm<kBiasGelu>(s.h, C, M, p.fc1, s.hid, H, nullptr, 0, par);
  // means in place: segment g's mean goes to row g of hid (and of h for x), at or before its first row
  const float inv = 1.f / L;
  // one thread: in place, row g may lie in an earlier segment, read by another thread in a split
  const int64_t lo = 0, hi = par.tid == 0 ? G : 0;
  for (int64_t g = lo; g < hi; ++g) {
    const float *hg = s.hid + g * L * H, *xg = x + g * L * C;
    float *hm = s.hid + g * H, *xm = s.h + g * C;
    for (int pass = 0; pass < 2; ++pass) {
      const float* src = pass ? xg : hg;
      float* dst = pass ? xm : hm;
      const int n = pass ? C : H;
      int c = 0;
      for (; c + 16 <= n; c += 16) {
        v16 acc = vld(src + c);
        for (int t = 1; t < L; ++t) acc += vld(src + (int64_t)t * n + c);
        vst(dst + c, acc * inv);
      }
      for (; c < n; ++c) {
        float acc = src[c];
        for (int t = 1; t < L; ++t) acc += src[(int64_t)t * n + c];
        dst[c] = acc * inv;
      }
    }
  }
  par.barrier();
  gemm<kBiasResidual>(s.hid, H, G, p.fc2, out, ldo, s.h, C, par);
}

int module_out_length(const ModuleParams& m, int L) {
  for (int st = 1; st < m.nstages; ++st) L /= m.down_stride[st - 1];
  return L;
}

// Floats of each scratch buffer for a tile of G segments of length L.
void module_scratch_size(const ModuleParams& m, int64_t G, int L, int64_t* act, int64_t* hid, int64_t* row) {
  *act = 1, *hid = 1, *row = 1;
  for (int st = 0; st < m.nstages; ++st) {
    if (st > 0) L /= m.down_stride[st - 1];
    *act = imax(*act, G * L * m.dims[st]);
    *row = imax(*row, m.dims[st]);
    for (int b = 0; b < m.nblocks[st]; ++b) *hid = imax(*hid, G * L * m.blocks[st][b].fc1.n);
  }
}

// in (G * L, c_in) -> the module's output (G * L', dims[-1]), returned (one of s.x, s.x2). With `mean`
// (and a last stage with blocks), instead its mean over L' per segment, (G, dims[-1]) at row stride
// ldm, and nullptr is returned.
float* module_tile(const ModuleParams& m, const float* in, int G, int L, ModScratch s, const Par& par,
                   float* mean = nullptr, int64_t ldm = 0) {
  float *x = s.x, *x2 = s.x2;
  gemm<kBias>(in, m.c_in, (int64_t)G * L, m.stem, x, m.dims[0], nullptr, 0, par);
  layer_norm_rows(x, (int64_t)G * L, m.dims[0], m.stem_ln_w, m.stem_ln_b, m.stem_eps, x, par);
  for (int st = 0; st < m.nstages; ++st) {
    if (st > 0) {
      const int stride = m.down_stride[st - 1], C = m.dims[st - 1], Lo = L / stride;
      if (Lo * stride != L) {  // odd tail dropped, as Conv1d does: close the gaps between segments
        if (par.tid == 0)
          for (int g = 1; g < G; ++g)
            __builtin_memmove(x + (int64_t)g * Lo * stride * C, x + (int64_t)g * L * C,
                              sizeof(float) * Lo * stride * C);
        par.barrier();
      }
      // stride neighbours side by side form one row of the Linear: (G * Lo, stride * C)
      gemm<kBias>(x, (int64_t)stride * C, (int64_t)G * Lo, m.down[st - 1], x2, m.dims[st], nullptr, 0, par);
      float* t = x;
      x = x2;
      x2 = t;
      L = Lo;
    }
    s.x = x;
    const bool pool = mean && st == m.nstages - 1 && m.nblocks[st] > 0;
    for (int b = 0; b < m.nblocks[st] - (pool ? 1 : 0); ++b) lsr_block_tile(x, G, L, m.blocks[st][b], s, par);
    if (pool) {
      lsr_block_mean_tile(x, G, L, m.blocks[st][m.nblocks[st] - 1], s, mean, ldm, par);
      return nullptr;
    }
  }
  return x;
}
