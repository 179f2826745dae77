// Attention and the Transformer encoder layers on a tile of S samples.
//
// Part of the engine of kernels_impl.h: included there, inside namespace umsnet_fast::cpu::<isa>::{anonymous},
// once per instruction-set build; not a standalone header.

// Per (sample, head): scores against k transposed (vectorised over keys), softmax, weighted sum of v.
// Only the first nq tokens of each sample are queries (T, or 1 for the class token alone): out (S * nq, d).
void attention_rows(const float* qkv, int S, int T, int nq, int d, int heads, float scale, float* out, float* tmp,
                    const Par& par) {
  const int hd = d / heads, Tp = (T + 15) / 16 * 16;
  float* kt = tmp;              // (hd, Tp)
  float* srow = tmp + hd * Tp;  // (Tp,)
  float* qs = srow + Tp;        // (hd,) q scaled
  const int64_t ld = 3 * (int64_t)d;
  int64_t lo, hi;
  par.range((int64_t)S * heads, &lo, &hi);
  for (int64_t job = lo; job < hi; ++job) {
    const int64_t s = job / heads;
    const int h = (int)(job % heads);
    const float* base = qkv + s * T * ld + (int64_t)h * hd;
    for (int e = 0; e < hd; ++e) {
      for (int j = 0; j < T; ++j) kt[e * Tp + j] = base[j * ld + d + e];
      for (int j = T; j < Tp; ++j) kt[e * Tp + j] = 0.f;
    }
    for (int i = 0; i < nq; ++i) {
      const float* q = base + i * ld;
      for (int e = 0; e < hd; ++e) qs[e] = q[e] * scale;
      for (int j = 0; j < Tp; j += 16) {  // scores of 16 keys, accumulated in a register
        v16 acc = {};
        for (int e = 0; e < hd; ++e) acc += qs[e] * vld(kt + e * Tp + j);
        vst(srow + j, acc);
      }
      float mx = srow[0];
      for (int j = 1; j < T; ++j) mx = srow[j] > mx ? srow[j] : mx;
      v16 acc = {};
      for (int j = 0; j < Tp; j += 16) {
        v16 p = vexp(vld(srow + j) - mx);
        if (j + 16 > T)
          for (int l = T - j; l < 16; ++l) p[l] = 0.f;
        vst(srow + j, p);
        acc += p;
      }
      const float inv = 1.f / hsum(acc);
      float* o = out + (s * nq + i) * (int64_t)d + (int64_t)h * hd;
      int e = 0;
      for (; e + 16 <= hd; e += 16) {  // 16 output features at a time, in a register
        v16 oe = {};
        for (int j = 0; j < T; ++j) oe += srow[j] * vld(base + j * ld + 2 * d + e);
        vst(o + e, oe * inv);
      }
      for (; e < hd; ++e) {
        float oe = 0.f;
        for (int j = 0; j < T; ++j) oe += srow[j] * base[j * ld + 2 * d + e];
        o[e] = oe * inv;
      }
    }
  }
  par.barrier();
}

int64_t attention_tmp_size(int T, int d, int heads) {
  return (int64_t)(d / heads + 1) * ((T + 15) / 16 * 16) + d / heads;
}

struct LayerScratch {
  float *h = nullptr, *qkv = nullptr, *att = nullptr, *hid = nullptr;  // shared by a cooperative team
  float* tmp = nullptr;                                                // per thread
};

// x (S * T, d) in place: x += out_proj(attention(qkv(LN1 x))); x += fc2(GELU(fc1(LN2 x))).
void encoder_layer_tile(float* x, int S, int T, int d, const LayerParams& p, const LayerScratch& s, const Par& par) {
  const int64_t M = (int64_t)S * T;
  layer_norm_rows(x, M, d, p.ln1_w, p.ln1_b, p.eps, s.h, par);
  gemm<kBias>(s.h, d, M, p.qkv, s.qkv, 3 * d, nullptr, 0, par);
  attention_rows(s.qkv, S, T, T, d, p.heads, p.q_scale, s.att, s.tmp, par);
  gemm<kBiasResidual>(s.att, d, M, p.out, x, d, x, d, par);
  layer_norm_rows(x, M, d, p.ln2_w, p.ln2_b, p.eps, s.h, par);
  gemm<kBiasGelu>(s.h, d, M, p.fc1, s.hid, p.fc1.n, nullptr, 0, par);
  gemm<kBiasResidual>(s.hid, p.fc1.n, M, p.fc2, x, d, x, d, par);
}

// The last layer, for the class tokens only (rows s * T of x): the model reads nothing else after it.
// Keys and values still come from all tokens; attention, out_proj and the MLP run on S rows, not S * T.
void encoder_layer_cls_tile(float* x, int S, int T, int d, const LayerParams& p, const LayerScratch& s,
                            const Par& par) {
  const int64_t M = (int64_t)S * T, ldx = (int64_t)T * d;
  layer_norm_rows(x, M, d, p.ln1_w, p.ln1_b, p.eps, s.h, par);
  if (d % kPanel == 0) {  // q fills whole panels: keys and values of all tokens, queries of the class rows
    LinearParams kv = skip_outputs(p.qkv, d), q = p.qkv;
    q.n = d;
    gemm<kBias>(s.h, d, M, kv, s.qkv + d, 3 * d, nullptr, 0, par);
    gemm<kBias>(s.h, ldx, S, q, s.qkv, (int64_t)T * 3 * d, nullptr, 0, par);
  } else {
    gemm<kBias>(s.h, d, M, p.qkv, s.qkv, 3 * d, nullptr, 0, par);
  }
  attention_rows(s.qkv, S, T, 1, d, p.heads, p.q_scale, s.att, s.tmp, par);  // (S, d)
  gemm<kBiasResidual>(s.att, d, S, p.out, x, ldx, x, ldx, par);
  int64_t lo, hi;
  par.range(S, &lo, &hi);
  for (int64_t r = lo; r < hi; ++r) ln_row(x + r * ldx, s.h + r * d, d, p.ln2_w, p.ln2_b, p.eps);
  par.barrier();
  gemm<kBiasGelu>(s.h, d, S, p.fc1, s.hid, p.fc1.n, nullptr, 0, par);
  gemm<kBiasResidual>(s.hid, p.fc1.n, S, p.fc2, x, ldx, x, ldx, par);
}

int max_mlp(const ModelParams& m) {
  int h = 1;
  for (int l = 0; l < m.nlayers; ++l) h = (int)imax(h, m.layers[l].fc1.n);
  return h;
}
