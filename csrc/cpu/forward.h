// The forward stages: sensor modules on tiles of slices, then fusion module + Transformer on tiles of samples.
//
// Part of the engine of kernels_impl.h: included there, inside namespace umsnet_fast::cpu::<isa>::{anonymous},
// once per instruction-set build; not a standalone header.
// Buffers of the fusion + Transformer part for a tile of S samples: shared ones and per-thread ones.
struct HeadScratch {
  ModScratch mod;
  LayerScratch layer;
  float *tok = nullptr, *proj = nullptr, *pooled = nullptr;
  float* shared = nullptr;
  int64_t per_thread = 0;

  void alloc_shared(const ModelParams& m, int S) {
    const int K = m.num_slices, T = K + 1, d = m.d;
    int64_t act, hid, row;
    module_scratch_size(m.fusion, S, K, &act, &hid, &row);
    const int64_t M = (int64_t)S * T;
    const int64_t sizes[] = {
        act, act, act, hid, M * d, M * 3 * d, M * d, M * max_mlp(m), M * d, (int64_t)S * K * d, (int64_t)S * d};
    int64_t total = 0;
    for (int64_t n : sizes) total += (n + 15) / 16 * 16;
    shared = falloc(total);
    float* p = shared;
    float** dst[] = {&mod.x,     &mod.x2,    &mod.h, &mod.hid, &layer.h, &layer.qkv,
                     &layer.att, &layer.hid, &tok,   &proj,    &pooled};
    for (int i = 0; i < 11; ++i) {
      *dst[i] = p;
      p += (sizes[i] + 15) / 16 * 16;
    }
    per_thread = imax(row, attention_tmp_size(T, d, m.nlayers ? m.layers[0].heads : 1)) + 16;
  }
};

// F (S * K, sum of sensor widths) -> logits (S, num_classes) through fusion module and Transformer.
void head_tile(const ModelParams& m, const float* F, int S, float* logits, HeadScratch hs, float* thread_tmp,
               const Par& par) {
  const int K = m.num_slices, T = K + 1, d = m.d;
  hs.mod.tmp = thread_tmp;
  hs.layer.tmp = thread_tmp;
  const float* h = module_tile(m.fusion, F, S, K, hs.mod, par);  // (S * K, fusion_dims[-1])
  gemm<kBias>(h, m.fusion.dims[m.fusion.nstages - 1], (int64_t)S * K, m.token, hs.proj, d, nullptr, 0, par);
  int64_t lo, hi;
  par.range((int64_t)S * T, &lo, &hi);
  for (int64_t r = lo; r < hi; ++r) {  // [class] token, then the slices' tokens; plus positions
    const int64_t s = r / T;
    const int t = (int)(r % T);
    const float* src = t == 0 ? m.cls : hs.proj + (s * K + t - 1) * d;
    const float* pos = m.pos + (int64_t)t * d;
    float* dst = hs.tok + r * d;
    for (int c = 0; c < d; ++c) dst[c] = src[c] + pos[c];
  }
  par.barrier();
  for (int l = 0; l + 1 < m.nlayers; ++l) encoder_layer_tile(hs.tok, S, T, d, m.layers[l], hs.layer, par);
  if (m.nlayers > 0) encoder_layer_cls_tile(hs.tok, S, T, d, m.layers[m.nlayers - 1], hs.layer, par);
  par.range(S, &lo, &hi);
  for (int64_t s = lo; s < hi; ++s) ln_row(hs.tok + s * T * d, hs.pooled + s * d, d, m.norm_w, m.norm_b, m.norm_eps);
  par.barrier();
  gemm<kBias>(hs.pooled, d, S, m.head, logits, m.num_classes, nullptr, 0, par);
}

// Slices per tile of a sensor module: about 24 rows at the last stage, but enough tiles for all threads.
int sensor_group(int l_out, int64_t segments, int threads) {
  const char* env = getenv("UMSNET_FAST_CPU_TILE_ROWS");  // tuning knob: rows at the last stage
  const int64_t rows = env ? imax(1, atoi(env)) : 24;
  int64_t g = imax(1, (rows + l_out - 1) / imax(1, l_out));
  g = imin(g, imax(1, (segments + threads - 1) / threads));
  return (int)g;
}

// Element i of a sensor's input as fp32 (a bf16 is the top half of an fp32).
inline float input_at(const InputParams& in, int64_t i) {
  if (!in.bf16) return ((const float*)in.x)[i];
  const uint32_t bits = (uint32_t)((const uint16_t*)in.x)[i] << 16;
  float f;
  __builtin_memcpy(&f, &bits, sizeof(f));
  return f;
}

// Width of the per-slice features: every sensor's last width, side by side.
int feature_width(const ModelParams& m) {
  int fw = 0;
  for (int i = 0; i < m.nsensors; ++i) fw += m.sensors[i].dims[m.sensors[i].nstages - 1];
  return fw;
}

// Stage 1: F (B * K, feature_width) of each slice alone; xs: per sensor (B, C_i, K * L_i) views (K = 1 for
// slices already cut: streaming).
void features_impl(const ModelParams& m, const InputParams* xs, int B, int K, float* F, int threads) {
  const int64_t BK = (int64_t)B * K;
  const int fw = feature_width(m);

  // Each sensor's module on tiles of G slices; a thread runs whole tiles.
  int groups[64], tiles_before[65];
  int64_t need = 0;
  tiles_before[0] = 0;
  for (int i = 0; i < m.nsensors; ++i) {
    const ModuleParams& mod = m.sensors[i];
    const int L = xs[i].length / K;
    groups[i] = sensor_group(module_out_length(mod, L), BK, threads);
    tiles_before[i + 1] = tiles_before[i] + (int)((BK + groups[i] - 1) / groups[i]);
    int64_t act, hid, row;
    module_scratch_size(mod, groups[i], L, &act, &hid, &row);
    need = imax(need, 3 * act + hid + row + (int64_t)groups[i] * L * mod.c_in + 128);
  }
  const int ntiles = tiles_before[m.nsensors];
#pragma omp parallel num_threads(threads)
  {
    FlushDenormals flush;
    float* buf = falloc(need);
#pragma omp for schedule(dynamic, 1)
    for (int job = 0; job < ntiles; ++job) {
      int i = 0;
      while (job >= tiles_before[i + 1]) ++i;
      const ModuleParams& mod = m.sensors[i];
      const InputParams& in = xs[i];
      const int L = in.length / K, G = groups[i];
      const int64_t q0 = (int64_t)(job - tiles_before[i]) * G;
      const int g = (int)imin(G, BK - q0);
      int64_t act, hid, row;
      module_scratch_size(mod, G, L, &act, &hid, &row);
      ModScratch s;
      s.x = buf, s.x2 = buf + act, s.h = buf + 2 * act, s.hid = buf + 3 * act, s.tmp = s.hid + hid;
      float* gathered = s.tmp + row + 16;
      for (int gi = 0; gi < g; ++gi) {  // (b, c, k*L + t) -> rows (gi*L + t, c)
        const int64_t q = q0 + gi, b = q / K, k = q % K;
        for (int t = 0; t < L; ++t)
          for (int c = 0; c < mod.c_in; ++c)
            gathered[((int64_t)gi * L + t) * mod.c_in + c] = input_at(in, b * in.sb + c * in.sc + (k * L + t) * in.st);
      }
      int off = 0;
      for (int j = 0; j < i; ++j) off += m.sensors[j].dims[m.sensors[j].nstages - 1];
      const float* y = module_tile(mod, gathered, g, L, s, Par(), F + q0 * fw + off, fw);
      if (!y) continue;  // the last block wrote the means
      const int lf = module_out_length(mod, L), cf = mod.dims[mod.nstages - 1];
      for (int gi = 0; gi < g; ++gi) {  // mean over the remaining length
        float* dst = F + (q0 + gi) * fw + off;
        for (int c = 0; c < cf; ++c) dst[c] = 0.f;
        for (int t = 0; t < lf; ++t)
          for (int c = 0; c < cf; ++c) dst[c] += y[((int64_t)gi * lf + t) * cf + c];
        for (int c = 0; c < cf; ++c) dst[c] /= lf;
      }
    }
    free(buf);
  }
}

// Stages 2 and 3: F (B * K, feature_width) -> logits (B, num_classes), K = m.num_slices, on tiles of samples;
// with fewer samples than threads, all threads share a tile.
void head_impl(const ModelParams& m, const float* F, int B, float* logits, int threads) {
  const int K = m.num_slices, fw = feature_width(m);
  if (B < threads) {
    HeadScratch hs;
    hs.alloc_shared(m, B);
#pragma omp parallel num_threads(threads)
    {
      FlushDenormals flush;
      float* tmp = falloc(hs.per_thread);
      Par par;
      par.tid = omp_get_thread_num();
      par.nt = omp_get_num_threads();
      head_tile(m, F, B, logits, hs, tmp, par);
      free(tmp);
    }
    free(hs.shared);
  } else {
    const int S = (int)imin(4, (B + threads - 1) / threads);
    const int n = (B + S - 1) / S;
#pragma omp parallel num_threads(threads)
    {
      FlushDenormals flush;
      HeadScratch hs;
      hs.alloc_shared(m, S);
      float* tmp = falloc(hs.per_thread);
#pragma omp for schedule(dynamic, 1)
      for (int j = 0; j < n; ++j) {
        const int s0 = j * S, sn = (int)imin(S, B - s0);
        head_tile(m, F + (int64_t)s0 * K * fw, sn, logits + (int64_t)s0 * m.num_classes, hs, tmp, Par());
      }
      free(tmp);
      free(hs.shared);
    }
  }
}

void forward_impl(const ModelParams& m, const InputParams* xs, int B, float* logits, int threads) {
  float* F = falloc((int64_t)B * m.num_slices * feature_width(m));  // per-slice features, sensors side by side
  features_impl(m, xs, B, m.num_slices, F, threads);
  head_impl(m, F, B, logits, threads);
  free(F);
}
