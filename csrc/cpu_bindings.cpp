// Torch bindings of the fused CPU engine (umsnet_fast._cpu): the only C++ that sees at::Tensor.
//
// Weights arrive from umsnet_fast/backends/cpu.py as plain tensors (folded there); make_linear packs
// each matrix into the layout of csrc/cpu/kernels.h (fp32 panels, or bf16 VNNI pairs), the only place
// that layout is produced. Small objects keep the tensors alive and hold the plain-pointer views the
// kernels read: Linear, Block, Module, EncoderLayer, Model. Each op checks shapes and dtypes with errors
// that name them, takes fp32 or bf16 activations (computing in fp32 either way, the result in the input's
// dtype), allocates its output and calls the kernel table of the instruction set chosen at load time
// (UMSNET_FAST_CPU_ISA=auto|amx|avx512bf16|avx512|avx2|generic, or set_isa).
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "cpu/kernels.h"
#include "weight_watch.h"

namespace {

using namespace umsnet_fast::cpu;

const KernelTable* g_kernels = nullptr;

const KernelTable& kernels() {
  if (g_kernels == nullptr) {
    const char* env = std::getenv("UMSNET_FAST_CPU_ISA");
    const std::string name = env && *env ? env : "auto";
    g_kernels = select_kernels(name.c_str());
    TORCH_CHECK(g_kernels != nullptr, "UMSNET_FAST_CPU_ISA=", name,
                ": this CPU cannot run that build (expected auto, amx, avx512bf16, avx512, avx2 or generic)");
  }
  return *g_kernels;
}

void set_isa(const std::string& name) {
  const KernelTable* k = select_kernels(name.c_str());
  TORCH_CHECK(k != nullptr, "instruction set '", name,
              "' is unknown or not supported by this CPU (expected auto, amx, avx512bf16, avx512, avx2 or generic)");
  g_kernels = k;
}

std::vector<std::string> supported_isas() {
  std::vector<std::string> out;
  for (const char* n : kIsaNames)
    if (isa_supported(n)) out.push_back(n);
  return out;
}

int threads() { return std::max(1, at::get_num_threads()); }

void check_f32(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu(), what, ": expected a CPU tensor, got one on ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat, what, ": expected float32, got ", t.scalar_type());
}

// An activation: fp32 or bf16 on the CPU.
void check_act(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu(), what, ": expected a CPU tensor, got one on ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16, what,
              ": expected float32 or bfloat16, got ", t.scalar_type());
}

// The kernels' view of an activation: contiguous fp32 (a copy only when x is not that already).
at::Tensor as_f32(const at::Tensor& x) { return x.contiguous().to(at::kFloat); }

void check_vec(const at::Tensor& t, int64_t n, const char* what) {
  check_f32(t, what);
  TORCH_CHECK(t.dim() == 1 && t.size(0) == n && t.is_contiguous(), what, ": expected a contiguous (", n,
              ",) tensor, got shape ", t.sizes());
}

// ---- packed weights -----------------------------------------------------------------------------

struct Linear {
  at::Tensor w, b;  // packed: fp32 (P, k, 32) or bf16 (P, kp/2, 32, 2); bias fp32 (P * 32,); P = ceil(n/32)
  LinearParams p;
};

// weight (n, k), bias (n,), any float dtype (Python folds scales in float64) -> the packed layout of
// kernels.h, fp32 or bf16 (each value rounded once, to nearest even).
Linear make_linear(const at::Tensor& weight, const at::Tensor& bias, bool bf16) {
  TORCH_CHECK(weight.device().is_cpu() && weight.dim() == 2 && weight.is_floating_point() && weight.size(0) > 0 &&
                  weight.size(1) > 0,
              "weight: expected a non-empty (n, k) floating-point CPU tensor, got ", weight.scalar_type(), " ",
              weight.sizes(), " on ", weight.device());
  const int64_t n = weight.size(0), k = weight.size(1), panels = (n + kPanel - 1) / kPanel;
  TORCH_CHECK(bias.device().is_cpu() && bias.is_floating_point() && bias.dim() == 1 && bias.size(0) == n,
              "bias: expected a (", n, ",) floating-point CPU tensor, got ", bias.scalar_type(), " ", bias.sizes());
  const int64_t kp = bf16 ? (k + kKAlign - 1) / kKAlign * kKAlign : k;
  auto wp = at::zeros({panels * kPanel, kp}, weight.options().dtype(at::kDouble));
  wp.narrow(0, 0, n).narrow(1, 0, k).copy_(weight);
  at::Tensor w;
  if (bf16)  // (P, 32, kp/2, 2) -> (P, kp/2, 32, 2): column j's k pairs side by side
    w = wp.view({panels, kPanel, kp / 2, 2}).permute({0, 2, 1, 3}).contiguous().to(at::kBFloat16);
  else
    w = wp.view({panels, kPanel, k}).transpose(1, 2).contiguous().to(at::kFloat);
  auto b = at::zeros({panels * kPanel}, bias.options().dtype(at::kFloat));
  b.narrow(0, 0, n).copy_(bias);
  Linear l{w, b, {}};
  if (bf16)
    l.p.wb = reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>());
  else
    l.p.w = w.data_ptr<float>();
  l.p.b = b.data_ptr<float>();
  l.p.n = (int)n;
  l.p.k = (int)k;
  l.p.kp = (int)kp;
  return l;
}

struct Block {
  at::Tensor dw, ln_w, ln_b;
  Linear fc1, fc2;
  BlockParams p;
};

Block make_block(at::Tensor dw, at::Tensor ln_w, at::Tensor ln_b, double eps, Linear fc1, Linear fc2) {
  check_f32(dw, "depthwise weight");
  TORCH_CHECK(dw.dim() == 2 && dw.is_contiguous(), "depthwise weight: expected contiguous (k, C), got ", dw.sizes());
  const int64_t c = dw.size(1);
  check_vec(ln_w, c, "LayerNorm weight");
  check_vec(ln_b, c, "LayerNorm bias");
  TORCH_CHECK(fc1.p.k == c && fc2.p.n == c && fc2.p.k == fc1.p.n, "LSR block of width ", c, ": expected fc1 (H, ", c,
              ") and fc2 (", c, ", H), got fc1 (", fc1.p.n, ", ", fc1.p.k, ") and fc2 (", fc2.p.n, ", ", fc2.p.k, ")");
  Block b{dw, ln_w, ln_b, fc1, fc2, {}};
  b.p.dw = dw.data_ptr<float>();
  b.p.ln_w = ln_w.data_ptr<float>();
  b.p.ln_b = ln_b.data_ptr<float>();
  b.p.eps = (float)eps;
  b.p.c = (int)c;
  b.p.ksize = (int)dw.size(0);
  b.p.fc1 = fc1.p;
  b.p.fc2 = fc2.p;
  return b;
}

struct Module {
  Linear stem;
  at::Tensor ln_w, ln_b;
  std::vector<std::vector<Block>> stages;
  std::vector<BlockParams> block_views;  // all stages' blocks, in order; ModuleParams points into it
  std::vector<Linear> downs;
  ModuleParams p;
};

std::shared_ptr<Module> make_module(Linear stem, at::Tensor ln_w, at::Tensor ln_b, double eps,
                                    std::vector<std::vector<Block>> stages, std::vector<Linear> downs,
                                    std::vector<int64_t> strides) {
  TORCH_CHECK(!stages.empty() && (int)stages.size() <= kMaxStages, "LSR module: expected 1 to ", kMaxStages,
              " stages, got ", stages.size());
  TORCH_CHECK(downs.size() + 1 == stages.size() && strides.size() == downs.size(),
              "LSR module: expected one downsample and stride between consecutive stages, got ", downs.size(),
              " downsamples and ", strides.size(), " strides for ", stages.size(), " stages");
  check_vec(ln_w, stem.p.n, "stem LayerNorm weight");
  check_vec(ln_b, stem.p.n, "stem LayerNorm bias");
  auto m = std::make_shared<Module>();
  m->stem = stem, m->ln_w = ln_w, m->ln_b = ln_b, m->stages = std::move(stages), m->downs = std::move(downs);
  ModuleParams& p = m->p;
  p.c_in = stem.p.k;
  p.nstages = (int)m->stages.size();
  p.stem = stem.p;
  p.stem_ln_w = ln_w.data_ptr<float>();
  p.stem_ln_b = ln_b.data_ptr<float>();
  p.stem_eps = (float)eps;
  size_t total = 0;
  for (auto& s : m->stages) total += s.size();
  m->block_views.reserve(total);
  int width = stem.p.n;
  for (int s = 0; s < p.nstages; ++s) {
    if (s > 0) {
      const Linear& d = m->downs[s - 1];
      TORCH_CHECK(strides[s - 1] >= 1 && d.p.k == strides[s - 1] * width, "downsample ", s - 1, ": expected (C_out, ",
                  strides[s - 1] * width, ") for stride ", strides[s - 1], " from width ", width, ", got (", d.p.n,
                  ", ", d.p.k, ")");
      p.down[s - 1] = d.p;
      p.down_stride[s - 1] = (int)strides[s - 1];
      width = d.p.n;
    }
    p.dims[s] = width;
    p.nblocks[s] = (int)m->stages[s].size();
    p.blocks[s] = m->block_views.data() + m->block_views.size();
    for (auto& b : m->stages[s]) {
      TORCH_CHECK(b.p.c == width, "stage ", s, ": expected blocks of width ", width, ", got ", b.p.c);
      m->block_views.push_back(b.p);
    }
  }
  return m;
}

struct EncoderLayer {
  at::Tensor ln1_w, ln1_b, ln2_w, ln2_b;
  Linear qkv, out, fc1, fc2;
  LayerParams p;
};

EncoderLayer make_layer(at::Tensor ln1_w, at::Tensor ln1_b, Linear qkv, Linear out, at::Tensor ln2_w, at::Tensor ln2_b,
                        Linear fc1, Linear fc2, double eps, int64_t heads, double q_scale) {
  const int64_t d = out.p.n;
  TORCH_CHECK(heads >= 1 && d % heads == 0, "encoder layer: width ", d, " is not divisible by ", heads, " heads");
  TORCH_CHECK(qkv.p.n == 3 * d && qkv.p.k == d && out.p.k == d && fc1.p.k == d && fc2.p.n == d && fc2.p.k == fc1.p.n,
              "encoder layer of width ", d, ": inconsistent projections qkv (", qkv.p.n, ", ", qkv.p.k, "), out (",
              out.p.n, ", ", out.p.k, "), fc1 (", fc1.p.n, ", ", fc1.p.k, "), fc2 (", fc2.p.n, ", ", fc2.p.k, ")");
  for (auto* t : {&ln1_w, &ln1_b, &ln2_w, &ln2_b}) check_vec(*t, d, "encoder LayerNorm parameter");
  EncoderLayer l{ln1_w, ln1_b, ln2_w, ln2_b, qkv, out, fc1, fc2, {}};
  l.p.ln1_w = ln1_w.data_ptr<float>();
  l.p.ln1_b = ln1_b.data_ptr<float>();
  l.p.ln2_w = ln2_w.data_ptr<float>();
  l.p.ln2_b = ln2_b.data_ptr<float>();
  l.p.eps = (float)eps;
  l.p.heads = (int)heads;
  l.p.q_scale = (float)q_scale;
  l.p.qkv = qkv.p, l.p.out = out.p, l.p.fc1 = fc1.p, l.p.fc2 = fc2.p;
  return l;
}

struct Model {
  std::vector<std::shared_ptr<Module>> sensors;
  std::vector<ModuleParams> sensor_views;
  std::shared_ptr<Module> fusion;
  Linear token, head;
  at::Tensor cls, pos, norm_w, norm_b;
  std::vector<EncoderLayer> layers;
  std::vector<LayerParams> layer_views;
  ModelParams p;
};

std::shared_ptr<Model> make_model(std::vector<std::shared_ptr<Module>> sensors, std::shared_ptr<Module> fusion,
                                  Linear token, at::Tensor cls, at::Tensor pos, std::vector<EncoderLayer> layers,
                                  at::Tensor norm_w, at::Tensor norm_b, double norm_eps, Linear head,
                                  int64_t num_slices) {
  TORCH_CHECK(!sensors.empty() && sensors.size() <= 64, "model: expected 1 to 64 sensors, got ", sensors.size());
  const int64_t d = token.p.n;
  int64_t fw = 0;
  for (auto& s : sensors) fw += s->p.dims[s->p.nstages - 1];
  TORCH_CHECK(fusion->p.c_in == fw, "fusion module: expected ", fw, " input channels (sensor widths summed), got ",
              fusion->p.c_in);
  TORCH_CHECK(token.p.k == fusion->p.dims[fusion->p.nstages - 1], "token projection: expected (", d, ", ",
              fusion->p.dims[fusion->p.nstages - 1], "), got (", token.p.n, ", ", token.p.k, ")");
  for (int s = 1; s < fusion->p.nstages; ++s)
    TORCH_CHECK(fusion->p.down_stride[s - 1] == 1, "fusion module: downsample strides must be 1 (it keeps all slices)");
  check_vec(cls, d, "class token");
  check_f32(pos, "position embedding");
  TORCH_CHECK(pos.dim() == 2 && pos.size(0) == num_slices + 1 && pos.size(1) == d && pos.is_contiguous(),
              "position embedding: expected contiguous (", num_slices + 1, ", ", d, "), got ", pos.sizes());
  check_vec(norm_w, d, "final LayerNorm weight");
  check_vec(norm_b, d, "final LayerNorm bias");
  TORCH_CHECK(head.p.k == d, "head: expected (num_classes, ", d, "), got (", head.p.n, ", ", head.p.k, ")");
  for (auto& l : layers) TORCH_CHECK(l.p.out.n == d, "encoder layer: expected width ", d, ", got ", l.p.out.n);
  auto m = std::make_shared<Model>();
  m->sensors = std::move(sensors), m->fusion = fusion, m->token = token, m->head = head, m->cls = cls, m->pos = pos;
  m->norm_w = norm_w, m->norm_b = norm_b, m->layers = std::move(layers);
  for (auto& s : m->sensors) m->sensor_views.push_back(s->p);
  for (auto& l : m->layers) m->layer_views.push_back(l.p);
  ModelParams& p = m->p;
  p.nsensors = (int)m->sensors.size();
  p.num_slices = (int)num_slices;
  p.d = (int)d;
  p.num_classes = head.p.n;
  p.nlayers = (int)m->layers.size();
  p.sensors = m->sensor_views.data();
  p.fusion = fusion->p;
  p.token = token.p;
  p.cls = cls.data_ptr<float>();
  p.pos = pos.data_ptr<float>();
  p.layers = m->layer_views.data();
  p.norm_w = norm_w.data_ptr<float>();
  p.norm_b = norm_b.data_ptr<float>();
  p.norm_eps = (float)norm_eps;
  p.head = head.p;
  return m;
}

// ---- ops ------------------------------------------------------------------------------------------

at::Tensor rows(const at::Tensor& x, int64_t width, const char* what) {
  check_act(x, what);
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == width, what, ": expected (..., ", width, "), got shape ", x.sizes());
  return as_f32(x);
}

at::Tensor linear(const at::Tensor& x, const Linear& w, int64_t epilogue, const c10::optional<at::Tensor>& residual) {
  TORCH_CHECK(epilogue >= kBias && epilogue <= kBiasResidual, "epilogue: expected 0 (bias), 1 (GELU) or 2 (residual)");
  auto xc = rows(x, w.p.k, "linear input");
  auto sizes = x.sizes().vec();
  sizes.back() = w.p.n;
  at::Tensor y;
  if (epilogue == kBiasResidual) {
    TORCH_CHECK(residual.has_value(), "linear: epilogue 2 needs a residual");
    TORCH_CHECK(residual->sizes() == at::IntArrayRef(sizes), "residual: expected shape ", sizes, ", got ",
                residual->sizes());
    y = rows(*residual, w.p.n, "residual").clone();
  } else {
    y = at::empty(sizes, x.options().dtype(at::kFloat));
  }
  const int64_t M = xc.numel() / w.p.k;
  if (M > 0)
    kernels().linear(xc.data_ptr<float>(), M, w.p, (int)epilogue, y.data_ptr<float>(), y.data_ptr<float>(), threads());
  return y.to(x.scalar_type());
}

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps) {
  const int64_t C = x.size(-1);
  auto xc = rows(x, C, "layer_norm input");
  check_vec(w, C, "LayerNorm weight");
  check_vec(b, C, "LayerNorm bias");
  auto y = at::empty_like(xc);
  if (xc.numel() > 0)
    kernels().layer_norm(xc.data_ptr<float>(), xc.numel() / C, (int)C, w.data_ptr<float>(), b.data_ptr<float>(),
                         (float)eps, y.data_ptr<float>(), threads());
  return y.to(x.scalar_type());
}

at::Tensor lsr_block(const at::Tensor& x, const Block& b) {
  check_act(x, "lsr_block input");
  TORCH_CHECK(x.dim() == 3 && x.size(2) == b.p.c, "lsr_block: expected x (batch, length, ", b.p.c, "), got ",
              x.sizes());
  auto y = as_f32(x).clone();
  if (y.numel() > 0) kernels().lsr_block(y.data_ptr<float>(), (int)x.size(0), (int)x.size(1), b.p, threads());
  return y.to(x.scalar_type());
}

at::Tensor lsr_module(const at::Tensor& x, const Module& m) {
  check_act(x, "lsr_module input");
  TORCH_CHECK(x.dim() == 3 && x.size(2) == m.p.c_in, "lsr_module: expected x (batch, length, ", m.p.c_in, "), got ",
              x.sizes());
  int64_t L = x.size(1);
  for (int s = 1; s < m.p.nstages; ++s) L /= m.p.down_stride[s - 1];
  TORCH_CHECK(L >= 1, "lsr_module: length ", x.size(1), " is too short for the downsample strides");
  auto xc = as_f32(x);
  auto y = at::empty({x.size(0), L, m.p.dims[m.p.nstages - 1]}, xc.options());
  if (y.numel() > 0)
    kernels().lsr_module(xc.data_ptr<float>(), (int)x.size(0), (int)x.size(1), m.p, y.data_ptr<float>(), threads());
  return y.to(x.scalar_type());
}

at::Tensor attention(const at::Tensor& qkv, int64_t heads, double scale) {
  check_act(qkv, "qkv");
  TORCH_CHECK(qkv.dim() == 3 && qkv.size(2) % 3 == 0 && (qkv.size(2) / 3) % heads == 0,
              "attention: expected qkv (batch, tokens, 3 * d) with d divisible by ", heads, " heads, got ",
              qkv.sizes());
  auto qc = as_f32(qkv);
  const int64_t d = qkv.size(2) / 3;
  auto out = at::empty({qkv.size(0), qkv.size(1), d}, qc.options());
  if (out.numel() > 0)
    kernels().attention(qc.data_ptr<float>(), (int)qkv.size(0), (int)qkv.size(1), (int)d, (int)heads, (float)scale,
                        out.data_ptr<float>(), threads());
  return out.to(qkv.scalar_type());
}

at::Tensor encoder_layer(const at::Tensor& x, const EncoderLayer& l) {
  check_act(x, "encoder_layer input");
  const int64_t d = l.p.out.n;
  TORCH_CHECK(x.dim() == 3 && x.size(2) == d, "encoder_layer: expected x (batch, tokens, ", d, "), got ", x.sizes());
  auto y = as_f32(x).clone();
  if (y.numel() > 0)
    kernels().encoder_layer(y.data_ptr<float>(), (int)x.size(0), (int)x.size(1), (int)d, l.p, threads());
  return y.to(x.scalar_type());
}

at::Tensor forward(const Model& m, const std::vector<at::Tensor>& xs) {
  TORCH_CHECK((int)xs.size() == m.p.nsensors, "forward: expected ", m.p.nsensors, " input tensors, got ", xs.size());
  const int64_t B = xs[0].size(0), K = m.p.num_slices;
  std::vector<InputParams> in(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    const auto& x = xs[i];
    check_act(x, "sensor input");
    TORCH_CHECK(x.scalar_type() == xs[0].scalar_type(), "sensor ", i, ": expected ", xs[0].scalar_type(),
                " like sensor 0, got ", x.scalar_type());
    const ModuleParams& s = m.p.sensors[i];
    TORCH_CHECK(x.dim() == 3 && x.size(0) == B && x.size(1) == s.c_in && x.size(2) % K == 0, "sensor ", i,
                ": expected (", B, ", ", s.c_in, ", K * L) with K = ", K, ", got ", x.sizes());
    int64_t L = x.size(2) / K;
    for (int st = 1; st < s.nstages; ++st) L /= s.down_stride[st - 1];
    TORCH_CHECK(L >= 1, "sensor ", i, ": slice length ", x.size(2) / K, " is too short for the downsamples");
    in[i] = InputParams{x.data_ptr(),  x.scalar_type() == at::kBFloat16, x.stride(0), x.stride(1), x.stride(2),
                        (int)x.size(2)};
  }
  auto logits = at::empty({B, (int64_t)m.p.num_classes}, xs[0].options().dtype(at::kFloat));
  if (B > 0) kernels().forward(m.p, in.data(), (int)B, logits.data_ptr<float>(), threads());
  return logits.to(xs[0].scalar_type());
}

// Stage 1 of the forward on slices already cut (streaming): per sensor (n, L_i, C_i), any strides ->
// features (n, feature width), sensors side by side, in the inputs' dtype.
at::Tensor slice_features(const Model& m, const std::vector<at::Tensor>& slices) {
  TORCH_CHECK((int)slices.size() == m.p.nsensors, "slice_features: expected ", m.p.nsensors, " tensors, got ",
              slices.size());
  const int64_t n = slices[0].size(0);
  std::vector<InputParams> in(slices.size());
  int fw = 0;
  for (size_t i = 0; i < slices.size(); ++i) {
    const auto& x = slices[i];
    check_act(x, "slices");
    const ModuleParams& s = m.p.sensors[i];
    fw += s.dims[s.nstages - 1];
    TORCH_CHECK(x.scalar_type() == slices[0].scalar_type(), "sensor ", i, ": expected ", slices[0].scalar_type(),
                " like sensor 0, got ", x.scalar_type());
    TORCH_CHECK(x.dim() == 3 && x.size(0) == n && x.size(2) == s.c_in, "sensor ", i, ": expected slices (", n, ", L, ",
                s.c_in, "), got ", x.sizes());
    int64_t L = x.size(1);
    for (int st = 1; st < s.nstages; ++st) L /= s.down_stride[st - 1];
    TORCH_CHECK(L >= 1, "sensor ", i, ": slice length ", x.size(1), " is too short for the downsamples");
    // (n, L, C) seen as windows of one slice: batch stride, channel stride, time stride
    in[i] = InputParams{x.data_ptr(),  x.scalar_type() == at::kBFloat16, x.stride(0), x.stride(2), x.stride(1),
                        (int)x.size(1)};
  }
  auto features = at::empty({n, (int64_t)fw}, slices[0].options().dtype(at::kFloat));
  if (n > 0) kernels().features(m.p, in.data(), (int)n, 1, features.data_ptr<float>(), threads());
  return features.to(slices[0].scalar_type());
}

// Stages 2 and 3 of the forward: features of whole windows (B, K, feature width) -> logits (B, classes).
at::Tensor window_head(const Model& m, const at::Tensor& features) {
  int fw = 0;
  for (int i = 0; i < m.p.nsensors; ++i) fw += m.p.sensors[i].dims[m.p.sensors[i].nstages - 1];
  check_act(features, "features");
  TORCH_CHECK(features.dim() == 3 && features.size(1) == m.p.num_slices && features.size(2) == fw,
              "window_head: expected features (batch, ", m.p.num_slices, ", ", fw, "), got ", features.sizes());
  const int64_t B = features.size(0);
  auto f = features.to(at::kFloat).contiguous();
  auto logits = at::empty({B, (int64_t)m.p.num_classes}, features.options().dtype(at::kFloat));
  if (B > 0) kernels().head(m.p, f.data_ptr<float>(), (int)B, logits.data_ptr<float>(), threads());
  return logits.to(features.scalar_type());
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, mod) {
  mod.doc() = "umsnet_fast fused CPU engine (csrc/cpu); packed by umsnet_fast.backends.cpu";
  // The packed layout and the epilogue codes are defined in csrc/cpu/kernels.h only; Python reads them here.
  mod.attr("PANEL") = kPanel;
  mod.attr("EPILOGUE_BIAS") = (int)kBias;
  mod.attr("EPILOGUE_GELU") = (int)kBiasGelu;
  mod.attr("EPILOGUE_RESIDUAL") = (int)kBiasResidual;
  py::class_<Linear>(mod, "Linear")
      .def_property_readonly("n", [](const Linear& l) { return l.p.n; })
      .def_property_readonly("k", [](const Linear& l) { return l.p.k; })
      .def_property_readonly("bf16", [](const Linear& l) { return l.p.wb != nullptr; })
      .def_property_readonly("packed", [](const Linear& l) { return l.w; }, "the packed weight (for tests)");
  py::class_<Block>(mod, "Block");
  py::class_<Module, std::shared_ptr<Module>>(mod, "Module");
  py::class_<EncoderLayer>(mod, "EncoderLayer");
  py::class_<Model, std::shared_ptr<Model>>(mod, "Model");
  mod.attr("K_ALIGN") = kKAlign;
  mod.def("make_linear", &make_linear, py::arg("weight"), py::arg("bias"), py::arg("bf16") = false,
          "weight (n, k), bias (n,) -> Linear packed in fp32 panels, or in bf16 VNNI pairs with bf16=True");
  mod.def("make_block", &make_block);
  mod.def("make_module", &make_module);
  mod.def("make_layer", &make_layer);
  mod.def("make_model", &make_model);
  mod.def("isa", [] { return std::string(kernels().name); }, "instruction set of the kernels in use");
  mod.def("bf16_path", [] { return std::string(kernels().bf16_path); }, "how the kernels in use multiply bf16 weights");
  mod.def("set_isa", &set_isa, "choose the kernels: auto, amx, avx512bf16, avx512, avx2 or generic");
  mod.def("supported_isas", &supported_isas);
  umsnet_fast::bind_weight_watch(mod);
  // The ops run without the GIL, so Python threads compute in parallel: arguments are converted before
  // it is released and the result after it is re-acquired; in between only ATen's C++ API and the
  // kernels run (no Python object is touched), and the packed weights are only read.
  using release_gil = py::call_guard<py::gil_scoped_release>;
  mod.def("linear", &linear, py::arg("x"), py::arg("w"), py::arg("epilogue") = 0, py::arg("residual") = py::none(),
          release_gil());
  mod.def("layer_norm", &layer_norm, release_gil());
  mod.def("lsr_block", &lsr_block, release_gil());
  mod.def("lsr_module", &lsr_module, release_gil());
  mod.def("attention", &attention, release_gil());
  mod.def("encoder_layer", &encoder_layer, release_gil());
  mod.def("forward", &forward, release_gil());
  mod.def("slice_features", &slice_features, release_gil());
  mod.def("window_head", &window_head, release_gil());
}
