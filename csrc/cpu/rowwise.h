// Row-wise ops: LayerNorm, and depthwise conv + LayerNorm of an LSR block.
//
// Part of the engine of kernels_impl.h: included there, inside namespace umsnet_fast::cpu::<isa>::{anonymous},
// once per instruction-set build; not a standalone header.

// y = LayerNorm(x) over C (two passes in fp32); y may alias x.
inline void ln_row(const float* x, float* y, int C, const float* w, const float* b, float eps) {
  v16 s = {};
  int c = 0;
  for (; c + 16 <= C; c += 16) s += vld(x + c);
  float sum = hsum(s);
  for (; c < C; ++c) sum += x[c];
  const float mean = sum / C;
  v16 q = {};
  for (c = 0; c + 16 <= C; c += 16) {
    const v16 d = vld(x + c) - mean;
    q += d * d;
  }
  float var = hsum(q);
  for (; c < C; ++c) var += (x[c] - mean) * (x[c] - mean);
  const float rstd = 1.f / __builtin_sqrtf(var / C + eps);
  for (c = 0; c + 16 <= C; c += 16) vst(y + c, (vld(x + c) - mean) * rstd * vld(w + c) + vld(b + c));
  for (; c < C; ++c) y[c] = (x[c] - mean) * rstd * w[c] + b[c];
}

void layer_norm_rows(const float* x, int64_t M, int C, const float* w, const float* b, float eps, float* y,
                     const Par& par) {
  int64_t lo, hi;
  par.range(M, &lo, &hi);
  for (int64_t r = lo; r < hi; ++r) ln_row(x + r * C, y + r * C, C, w, b, eps);
  par.barrier();
}

// h = LayerNorm(depthwise conv(x)) on G segments of L rows each (zero padding at segment ends).
void dwconv_ln(const float* x, float* h, int G, int L, const BlockParams& p, float* tmp, const Par& par) {
  const int C = p.c, pad = p.ksize / 2;
  int64_t lo, hi;
  par.range((int64_t)G * L, &lo, &hi);
  for (int64_t r = lo; r < hi; ++r) {
    const int64_t g = r / L;
    const int t = (int)(r % L);
    const int j0 = (int)imax(0, pad - t), j1 = (int)imin(p.ksize, L + pad - t);  // taps inside the segment
    const int64_t r0 = g * L + t - pad;  // input row of tap 0 (may lie outside: only taps j0..j1 are read)
    int c = 0;
    for (; c + 16 <= C; c += 16) {  // 16 channels in a register across the taps
      v16 acc = {};
      for (int j = j0; j < j1; ++j) acc += vld(p.dw + (int64_t)j * C + c) * vld(x + (r0 + j) * C + c);
      vst(tmp + c, acc);
    }
    for (; c < C; ++c) {
      float acc = 0.f;
      for (int j = j0; j < j1; ++j) acc += p.dw[(int64_t)j * C + c] * x[(r0 + j) * C + c];
      tmp[c] = acc;
    }
    ln_row(tmp, h + r * C, C, p.ln_w, p.ln_b, p.eps);
  }
  par.barrier();
}
