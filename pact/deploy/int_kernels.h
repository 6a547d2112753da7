// Raw integer loops of the deployment engine (engine.h): the u8 x s8 -> s32 matrix product the
// low-bit convolutions and linear layers run on, and the requantization that turns int32
// accumulators into the next layer's activation codes. No LibTorch here.
//
// Three builds of the same contract, picked at run time like the PACT kernels
// (pact/quant/pact_kernels.h): portable loops for any CPU ("generic"), the same loops compiled
// for AVX2 ("avx2"), and hand-written AVX-512 VNNI kernels ("avx512_vnni": vpdpbusd sums four
// u8 x s8 products into an int32 lane in one instruction). All are exact integer arithmetic, so
// they agree bit for bit.
#ifndef PACT_DEPLOY_INT_KERNELS_H_
#define PACT_DEPLOY_INT_KERNELS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace pact::deploy::kernels {

// Weights of one layer for GemmU8S8: n outputs of k inputs each, stored as [k4 / 4][n_pad][4]
// int8 (four consecutive inputs of one output next to each other, outputs contiguous), zero
// padded to k4 = k rounded up to 4 and n_pad = n rounded up to kGemmColumns.
inline constexpr int64_t kGemmColumns = 16;
inline int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
std::vector<int8_t> PackGemmWeights(const int32_t* w, int64_t n, int64_t k);
// The same for GemmS16S16: [k2 / 2][n_pad][2] int16, k2 = k rounded up to 2.
std::vector<int16_t> PackGemmWeights16(const int32_t* w, int64_t n, int64_t k);

// One term of a requantization sum: an int32 or uint8 tensor of rows x channels (row stride
// `stride` elements) and its per-channel multiplier.
struct RequantTerm {
  const void* input = nullptr;
  bool is_u8 = false;
  int64_t stride = 0;
  const int32_t* multiplier = nullptr;
};

// out[r][c] = clamp((sum_t in_t[r][c] * multiplier_t[c] + bias[c]) >> shift[c], 0, max_code):
// the fixed-point form of round(y / out_scale) clipped to the activation's levels (Jacob et al.
// 2018, arXiv:1712.05877, Sec. 2.2, with a 64-bit product instead of the doubling high
// multiply); `bias` holds the rounding offset 2^(shift - 1). Sums are 64-bit.
inline constexpr int kMaxRequantTerms = 4;
struct RequantArgs {
  int64_t rows = 0;
  int64_t channels = 0;
  int num_terms = 0;
  RequantTerm terms[kMaxRequantTerms];
  const int64_t* bias = nullptr;
  const int32_t* shift = nullptr;  // per channel, in [1, 62]
  int32_t max_code = 0;            // <= 255
  uint8_t* out = nullptr;
  int64_t out_stride = 0;
};

struct IntKernels {
  const char* name;
  // The largest |a0 * w0 + a1 * w1| (two u8 x s8 products) gemm_u8s8 and conv_u8s8 sum exactly:
  // the AVX2 build adds pairs in int16 (vpmaddubsw saturates). Callers whose codes could exceed
  // it use another build for that layer (the engine checks each layer's bound).
  int64_t u8_pair_limit;
  // c[i][j] = sum_k a[i][k] * w[j][k] for i < m, j < n, with `w` from PackGemmWeights (k4, n_pad
  // as there). a: m rows of k4 bytes (zero past k), row stride lda; c: row stride ldc, only
  // columns j < n written.
  void (*gemm_u8s8)(const uint8_t* a, int64_t m, int64_t lda, const int8_t* w, int64_t k4,
                    int64_t n, int64_t n_pad, int32_t* c, int64_t ldc);
  // The int16 x int16 -> int32 product (the first layer on int16 input codes), weights from
  // PackGemmWeights16; a: m rows of k2 int16 (zero past k). Sums must fit int32 (the compiler
  // checks the bound).
  void (*gemm_s16s16)(const int16_t* a, int64_t m, int64_t lda, const int16_t* w, int64_t k2,
                      int64_t n, int64_t n_pad, int32_t* c, int64_t ldc);
  // A convolution of one NHWC uint8 image without an im2col copy (implicit GEMM): `in` is the
  // image already zero-padded to rows of `wp` pixels of `c` channels (c % 4 == 0); output pixel
  // (y, x) reads, for each kernel row ky, the kw * c contiguous bytes at pixel
  // (y * stride + ky, x * stride). Weights from PackGemmWeights of [n][kh][kw][c]; out[y][x][j]
  // for j < n, row stride ldc per pixel.
  void (*conv_u8s8)(const uint8_t* in, int64_t wp, int64_t c, int64_t kh, int64_t kw,
                    int64_t stride, int64_t oh, int64_t ow, const int8_t* w, int64_t n,
                    int64_t n_pad, int32_t* out, int64_t ldc);
  void (*requant)(const RequantArgs& args);
};

// The build this CPU runs: the last of SupportedIntKernels().
const IntKernels& ActiveIntKernels();
// Every build this CPU can run, generic first, fastest last.
std::vector<const IntKernels*> SupportedIntKernels();
// Picks a build by name (for tests and benchmarks); false when the CPU cannot run it.
bool SetIntKernels(const std::string& name);

}  // namespace pact::deploy::kernels

#endif  // PACT_DEPLOY_INT_KERNELS_H_
