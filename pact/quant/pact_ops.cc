#include "pact/quant/pact_ops.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "pact/quant/buffer_cache.h"
#include "pact/quant/fused_op_util.h"
#include "pact/quant/pact_kernels.h"

namespace pact::quant {
namespace {

using internal::AlignedGrad;
using internal::AlignGrad;
using internal::Dense;
using internal::kGrain;
using internal::MapBlocks;
using internal::RoundToDtype;
using internal::SumInOrder;
using kernels::kReduceBlock;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

double Levels(int64_t bits) { return std::ldexp(1.0, static_cast<int>(bits)) - 1.0; }

void CheckPactBits(int64_t bits) {
  TORCH_CHECK(bits >= 0 && bits <= 16, "PACT bits must be in [0, 16], got ", bits);
}

// PACT's alpha in x's dtype; must stay positive after rounding.
double PactAlpha(double alpha, torch::ScalarType dtype) {
  const double rounded = RoundToDtype(alpha, dtype);
  TORCH_CHECK(rounded > 0, "PACT alpha must be > 0, got ", alpha);
  return rounded;
}

// The size of cpu0's level-3 cache from sysfs (on some VMs glibc's sysconf reports a size for
// the whole package, many times the real L3: README.md, Benchmarks), else 32 MiB.
int64_t LastLevelCacheBytes() {
  static const int64_t bytes = [] {
    std::ifstream in("/sys/devices/system/cpu/cpu0/cache/index3/size");
    int64_t value = 0;
    char unit = 0;
    if (!(in >> value) || value <= 0) return int64_t{32} << 20;
    if (in >> unit) value <<= unit == 'K' ? 10 : unit == 'M' ? 20 : unit == 'G' ? 30 : 0;
    return value;
  }();
  return bytes;
}

std::atomic<int64_t> streaming_bytes_override{-1};

// Whether the fused PACT kernels write an output of `bytes` with non-temporal stores.
bool StreamOutput(int64_t bytes) {
  const int64_t override_bytes = streaming_bytes_override.load(std::memory_order_relaxed);
  return bytes >= (override_bytes >= 0 ? override_bytes : LastLevelCacheBytes());
}

// The mask words of PactCodes::words (CheckedCodeCount checks their alignment).
kernels::PactMaskWord* MaskWords(const torch::Tensor& words) {
  return reinterpret_cast<kernels::PactMaskWord*>(words.data_ptr<uint8_t>());
}

// Whether sizes/strides visit every element of a numel-sized buffer exactly once (as
// Tensor::is_non_overlapping_and_dense, without making a tensor): walked from the smallest
// stride, each dimension of size > 1 must step over exactly the dimensions before it.
bool IsDenseLayout(const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides) {
  std::vector<size_t> order(sizes.size());
  for (size_t d = 0; d < order.size(); ++d) order[d] = d;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return strides[a] < strides[b]; });
  int64_t expected = 1;
  for (size_t d : order) {
    if (sizes[d] == 1) continue;
    if (strides[d] != expected) return false;
    expected *= sizes[d];
  }
  return true;
}

// The number of elements `codes` describes, after checking that it is what
// PactForwardWithCodesKernel returns: dense geometry and words of the matching size.
int64_t CheckedCodeCount(const PactCodes& codes) {
  TORCH_CHECK(codes.sizes.size() == codes.strides.size(), "PACT codes: ", codes.sizes.size(),
              " sizes but ", codes.strides.size(), " strides");
  int64_t n = 1;
  for (int64_t size : codes.sizes) {
    TORCH_CHECK(size >= 0, "PACT codes: negative size in ", torch::IntArrayRef(codes.sizes));
    n *= size;
  }
  TORCH_CHECK(
      codes.words.defined() && codes.words.device().is_cpu() &&
          codes.words.scalar_type() == torch::kByte && codes.words.dim() == 1 &&
          codes.words.is_contiguous() && codes.words.numel() == 2 * kernels::PactMaskWords(n),
      "PACT codes must be the contiguous CPU uint8 tensor of ", 2 * kernels::PactMaskWords(n),
      " bytes that PactForwardWithCodesKernel returns for ", n, " elements, got ",
      codes.words.defined()
          ? codes.words.toString() + " of " + std::to_string(codes.words.numel()) + " elements"
          : std::string("an undefined tensor"));
  TORCH_CHECK(
      reinterpret_cast<uintptr_t>(codes.words.data_ptr()) % alignof(kernels::PactMaskWord) == 0,
      "PACT codes: the words must start at an even address (a slice of them does not)");
  TORCH_CHECK(n == 0 || IsDenseLayout(codes.sizes, codes.strides), "PACT codes: sizes ",
              torch::IntArrayRef(codes.sizes), " with strides ", torch::IntArrayRef(codes.strides),
              " are not a dense layout");
  return n;
}

// ---------------------------------------------------------------------------------------------
// Composed ATen versions: the fallback for devices and dtypes without fused kernels (CUDA).

torch::Tensor ComposedPactForward(const torch::Tensor& x, double alpha, int64_t bits) {
  const double a = PactAlpha(alpha, x.scalar_type());
  torch::Tensor y = torch::clamp(x, 0.0, a);
  if (bits == 0) return y;
  const double levels = Levels(bits);
  return torch::round(y * (levels / a)) * (a / levels);
}

std::pair<torch::Tensor, torch::Tensor> ComposedPactBackward(const torch::Tensor& grad_y,
                                                             const torch::Tensor& x, double alpha) {
  const double a = PactAlpha(alpha, x.scalar_type());
  const torch::Tensor g = grad_y.to(x.scalar_type());
  const torch::Tensor zero = torch::zeros({}, g.options());
  const torch::Tensor grad_x = torch::where((x >= 0) & (x < a), g, zero);
  const torch::Tensor grad_alpha =
      torch::where(x >= a, g, zero).sum(torch::kDouble).to(x.scalar_type());
  return {grad_x, grad_alpha};
}

torch::Tensor ComposedDorefa(const torch::Tensor& w, int64_t bits) {
  const torch::Tensor t = torch::tanh(w);
  const torch::Tensor a = t / (2 * t.abs().max()) + 0.5;
  const double levels = Levels(bits);
  // Divide by a device tensor, not a double: ATen's CUDA division by a CPU scalar multiplies
  // by its reciprocal, which can land one ulp away from the CPU kernels' true division.
  const torch::Tensor q =
      torch::round(a.detach() * levels) / torch::scalar_tensor(levels, a.options());
  // Straight-through: q's value (q + 0 exactly) with a's gradient.
  return 2 * (q + (a - a.detach())) - 1;
}

// ---------------------------------------------------------------------------------------------
// Fused CPU paths.

std::pair<torch::Tensor, PactCodes> FusedPactForward(const torch::Tensor& x, double alpha,
                                                     int64_t bits, bool with_codes) {
  const torch::Tensor src = Dense(x);
  const double a = PactAlpha(alpha, src.scalar_type());
  // src's (dense) strides; the cache keeps y at a stable, likely still cached, address.
  torch::Tensor y = EmptyFromBufferCache(src.sizes(), src.strides(), src.scalar_type());
  const int64_t n = src.numel();
  const int64_t words = kernels::PactMaskWords(n);
  PactCodes codes;
  if (with_codes) {
    codes = {EmptyFromBufferCache({2 * words}, {1}, torch::kByte), y.sizes().vec(),
             y.strides().vec()};
  }
  const double levels = Levels(bits);
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "pact_forward", [&] {
    const auto& k = kernels::ActiveKernels().get<scalar_t>();
    const scalar_t alpha_s = static_cast<scalar_t>(a);
    const scalar_t scale = static_cast<scalar_t>(levels / a);
    const scalar_t step = static_cast<scalar_t>(a / levels);
    const scalar_t* xp = src.data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    kernels::PactMaskWord* mp = with_codes ? MaskWords(codes.words) : nullptr;
    const bool stream = with_codes && StreamOutput(y.nbytes());
    // Tasks are whole mask groups: each writes its own words.
    at::parallel_for(0, words, kGrain / kernels::kMaskGroup, [&](int64_t begin, int64_t end) {
      const int64_t first = begin * kernels::kMaskGroup;
      const int64_t last = std::min(n, end * kernels::kMaskGroup);
      k.pact_forward(xp + first, yp + first, mp == nullptr ? nullptr : mp + begin, last - first,
                     alpha_s, scale, step, bits > 0, stream);
    });
  });
  return {y, codes};
}

// PACT autograd function: the fused path saves the 2-bit codes, the composed one saves x.
struct PactFunction : public torch::autograd::Function<PactFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& alpha, int64_t bits, double alpha_eff) {
    ctx->saved_data["alpha"] = alpha_eff;
    ctx->saved_data["alpha_like"] = alpha.detach();  // device, dtype and shape of dL/dalpha
    const bool fused = UsesFusedKernels(x);
    ctx->saved_data["fused"] = fused;
    if (fused) {
      auto [y, codes] = FusedPactForward(x, alpha_eff, bits, /*with_codes=*/true);
      ctx->save_for_backward({codes.words});
      ctx->saved_data["sizes"] = std::move(codes.sizes);
      ctx->saved_data["strides"] = std::move(codes.strides);
      return y;
    }
    ctx->save_for_backward({x});
    return ComposedPactForward(x, alpha_eff, bits);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const torch::Tensor saved = ctx->get_saved_variables()[0];
    auto [grad_x, grad_alpha] =
        ctx->saved_data["fused"].toBool()
            ? PactBackwardFromCodesKernel(grads[0], {saved, ctx->saved_data["sizes"].toIntVector(),
                                                     ctx->saved_data["strides"].toIntVector()})
            : PactBackwardKernel(grads[0], saved, ctx->saved_data["alpha"].toDouble());
    const torch::Tensor like = ctx->saved_data["alpha_like"].toTensor();
    return {grad_x, grad_alpha.to(like.options()).reshape(like.sizes()), torch::Tensor(),
            torch::Tensor()};
  }
};

// DoReFa forward on CPU: t = tanh(w) (ATen's vectorized tanh, bitwise what the composed
// expression uses), m = max|t| (a separate reduction pass), then one fused quantize pass.
struct DorefaForwardResult {
  torch::Tensor out;
  torch::Tensor t;
  double m = 0.0;
};

DorefaForwardResult FusedDorefaForward(const torch::Tensor& w, int64_t bits) {
  const torch::Tensor t = torch::tanh(Dense(w));
  torch::Tensor out = at::empty_like(t);
  const int64_t n = t.numel();
  double m = 0.0;
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "dorefa_forward", [&] {
    const auto& k = kernels::ActiveKernels().get<scalar_t>();
    const scalar_t* tp = t.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    // max is exact, so the block order does not matter here; NaN wins.
    scalar_t max_abs = 0;
    for (scalar_t block_max :
         MapBlocks<scalar_t>(n, [&](int64_t b, int64_t e) { return k.abs_max(tp + b, e - b); })) {
      if (block_max > max_abs || std::isnan(block_max)) max_abs = block_max;
      if (std::isnan(max_abs)) break;
    }
    const scalar_t two_m = max_abs + max_abs;
    const scalar_t levels = static_cast<scalar_t>(Levels(bits));
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      k.dorefa_forward(tp + begin, op + begin, end - begin, two_m, levels);
    });
    m = max_abs;
  });
  return {out, t, m};
}

// Backward of the un-rounded expression f(w) = 2 * (t / D + 0.5) - 1 with t = tanh(w),
// D = 2 * max|t|:
//   dL/dt_i  = 2 g_i / D                                  (direct)
//   dL/dD    = -sum_j 2 g_j t_j / D^2,  dL/dmax = 2 dL/dD  (through the max)
//   tied elements (|t_j| == max) also get sign(t_j) * dL/dmax / #ties (autograd's max() rule)
//   dL/dw_i  = dL/dt_i * (1 - t_i^2)
// Two passes over (g, t): the dot product sum_j g_j t_j with the tie count, then the
// elementwise gradient.
torch::Tensor FusedDorefaBackward(const torch::Tensor& grad, const torch::Tensor& t, double m) {
  const AlignedGrad g = AlignGrad(grad, t.sizes(), t.strides(), t.scalar_type());
  torch::Tensor grad_w = at::empty_like(t);
  const int64_t n = t.numel();
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "dorefa_backward", [&] {
    const auto& k = kernels::ActiveKernels().get<scalar_t>();
    const scalar_t* gp = g.tensor.data_ptr<scalar_t>();
    const scalar_t* tp = t.data_ptr<scalar_t>();
    const scalar_t m_s = static_cast<scalar_t>(m);
    const auto block_results = MapBlocks<std::pair<double, int64_t>>(n, [&](int64_t b, int64_t e) {
      int64_t ties = 0;
      const double dot =
          k.dorefa_dot(g.broadcast ? gp : gp + b, g.broadcast, tp + b, m_s, e - b, &ties);
      return std::make_pair(dot, ties);
    });
    double dot = 0.0;
    int64_t ties = 0;
    for (const auto& [block_dot, block_ties] : block_results) {
      dot += block_dot;
      ties += block_ties;
    }
    const double d = 2.0 * static_cast<double>(m_s);
    const double grad_max = 2.0 * (-2.0 * dot / (d * d));
    const scalar_t share = static_cast<scalar_t>(ties > 0 ? grad_max / ties : 0.0);
    const scalar_t two_m = m_s + m_s;
    scalar_t* wp = grad_w.data_ptr<scalar_t>();
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      k.dorefa_backward(g.broadcast ? gp : gp + begin, g.broadcast, tp + begin, wp + begin,
                        end - begin, two_m, m_s, share);
    });
  });
  return grad_w;
}

struct DorefaFunction : public torch::autograd::Function<DorefaFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& w, int64_t bits) {
    DorefaForwardResult result = FusedDorefaForward(w, bits);
    ctx->save_for_backward({result.t});
    ctx->saved_data["m"] = result.m;
    return result.out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const torch::Tensor t = ctx->get_saved_variables()[0];
    return {FusedDorefaBackward(grads[0], t, ctx->saved_data["m"].toDouble()), torch::Tensor()};
  }
};

}  // namespace

bool UsesFusedKernels(const torch::Tensor& t) {
  return t.device().is_cpu() && t.layout() == torch::kStrided &&
         (t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kDouble);
}

torch::Tensor PactForwardKernel(const torch::Tensor& x, double alpha, int64_t bits) {
  CheckPactBits(bits);
  if (!UsesFusedKernels(x)) return ComposedPactForward(x, alpha, bits);
  return FusedPactForward(x, alpha, bits, /*with_codes=*/false).first;
}

std::pair<torch::Tensor, PactCodes> PactForwardWithCodesKernel(const torch::Tensor& x, double alpha,
                                                               int64_t bits) {
  CheckPactBits(bits);
  TORCH_CHECK(UsesFusedKernels(x),
              "PactForwardWithCodesKernel needs a CPU float or double tensor, got ", x.toString());
  return FusedPactForward(x, alpha, bits, /*with_codes=*/true);
}

std::pair<torch::Tensor, torch::Tensor> PactBackwardFromCodesKernel(const torch::Tensor& grad_y,
                                                                    const PactCodes& codes) {
  const int64_t n = CheckedCodeCount(codes);
  const torch::ScalarType dtype =
      grad_y.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const AlignedGrad g = AlignGrad(grad_y, codes.sizes, codes.strides, dtype);
  torch::Tensor grad_x = EmptyFromBufferCache(codes.sizes, codes.strides, dtype);
  double grad_alpha = 0.0;
  AT_DISPATCH_FLOATING_TYPES(dtype, "pact_backward", [&] {
    const auto& k = kernels::ActiveKernels().get<scalar_t>();
    const scalar_t* gp = g.tensor.data_ptr<scalar_t>();
    const kernels::PactMaskWord* mp = MaskWords(codes.words);
    scalar_t* gxp = grad_x.data_ptr<scalar_t>();
    const bool stream = StreamOutput(grad_x.nbytes());
    grad_alpha = SumInOrder(MapBlocks<double>(n, [&](int64_t b, int64_t e) {
      return k.pact_backward_mask(g.broadcast ? gp : gp + b, g.broadcast,
                                  mp + b / kernels::kMaskGroup, gxp + b, e - b, stream);
    }));
  });
  return {grad_x, torch::scalar_tensor(grad_alpha, torch::dtype(dtype))};
}

int64_t SetPactStreamingBytes(int64_t bytes) { return streaming_bytes_override.exchange(bytes); }

torch::Tensor UnpackPactCodes(const PactCodes& codes) {
  const int64_t n = CheckedCodeCount(codes);
  torch::Tensor out = at::empty_strided(codes.sizes, codes.strides, torch::kByte);
  uint8_t* op = out.data_ptr<uint8_t>();  // dense, so memory order is the words' order
  const kernels::PactMaskWord* mp = MaskWords(codes.words);
  for (int64_t i = 0; i < n; ++i) {
    const unsigned word = mp[i / kernels::kMaskGroup];
    const int64_t j = i % kernels::kMaskGroup;
    op[i] = (word >> (8 + j)) & 1u ? kernels::kCodeAbove
            : (word >> j) & 1u     ? kernels::kCodeInside
                                   : kernels::kCodeBelow;
  }
  return out;
}

std::pair<torch::Tensor, torch::Tensor> PactBackwardKernel(const torch::Tensor& grad_y,
                                                           const torch::Tensor& x, double alpha) {
  if (!UsesFusedKernels(x)) return ComposedPactBackward(grad_y, x, alpha);
  const torch::Tensor src = Dense(x);
  const double a = PactAlpha(alpha, src.scalar_type());
  const AlignedGrad g = AlignGrad(grad_y, src.sizes(), src.strides(), src.scalar_type());
  torch::Tensor grad_x = EmptyFromBufferCache(src.sizes(), src.strides(), src.scalar_type());
  const int64_t n = src.numel();
  double grad_alpha = 0.0;
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "pact_backward", [&] {
    const auto& k = kernels::ActiveKernels().get<scalar_t>();
    const scalar_t* gp = g.tensor.data_ptr<scalar_t>();
    const scalar_t* xp = src.data_ptr<scalar_t>();
    scalar_t* gxp = grad_x.data_ptr<scalar_t>();
    const scalar_t alpha_s = static_cast<scalar_t>(a);
    grad_alpha = SumInOrder(MapBlocks<double>(n, [&](int64_t b, int64_t e) {
      return k.pact_backward_x(g.broadcast ? gp : gp + b, g.broadcast, xp + b, alpha_s, gxp + b,
                               e - b);
    }));
  });
  return {grad_x, torch::scalar_tensor(grad_alpha, src.options())};
}

double PactForwardAlpha(const torch::Tensor& alpha, int64_t bits, double alpha_min,
                        torch::ScalarType dtype) {
  TORCH_CHECK(alpha.numel() == 1, "PACT alpha must have one element, got ", alpha.numel());
  CheckPactBits(bits);
  const double value = alpha.item<double>();
  return PactAlpha(value >= alpha_min ? value : alpha_min, dtype);  // NaN takes alpha_min too
}

torch::Tensor Pact(const torch::Tensor& x, const torch::Tensor& alpha, int64_t bits,
                   double alpha_min) {
  const double alpha_eff = PactForwardAlpha(alpha, bits, alpha_min, x.scalar_type());
  if (torch::GradMode::is_enabled() && (x.requires_grad() || alpha.requires_grad())) {
    return PactFunction::apply(x, alpha, bits, alpha_eff);
  }
  return PactForwardKernel(x, alpha_eff, bits);
}

torch::Tensor DorefaWeight(const torch::Tensor& w, int64_t bits) {
  TORCH_CHECK((bits >= 0 && bits <= 16) || bits == 32, "DoReFa bits must be in [0, 16] or 32, got ",
              bits);
  if (bits == 0 || bits == 32) return w;
  if (!UsesFusedKernels(w)) return ComposedDorefa(w, bits);
  if (torch::GradMode::is_enabled() && w.requires_grad()) return DorefaFunction::apply(w, bits);
  return FusedDorefaForward(w, bits).out;
}

}  // namespace pact::quant
