// Every kernel family of the plugin against its CPU reference (kernels.h) on small shapes:
// built with cusim-build by tests/cusim/kernels.test.ts (CUDA on the CPU) and with nvcc by
// tests/gpu/kernels.test.ts. Prints one line per check; exits 1 if any failed.
//   kernels_test [filter]   runs only the checks whose name contains filter
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels.h"

using namespace gpt2_cuda;

namespace {

int failures = 0;
const char* filter = nullptr;
std::mt19937 rng(1234);

std::vector<float> randn(size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Device copy of a host vector (freed at exit; the test is short-lived).
template <typename T>
T* dev(const std::vector<T>& h) {
  void* p = nullptr;
  if (cudaMalloc(&p, std::max<size_t>(1, h.size() * sizeof(T))) != cudaSuccess) {
    std::printf("FAIL cudaMalloc\n");
    std::exit(1);
  }
  if (!h.empty()) cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
  return static_cast<T*>(p);
}
template <typename T>
std::vector<T> host(const T* d, size_t n) {
  std::vector<T> h(n);
  cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost);
  return h;
}

bool wanted(const std::string& name) { return !filter || name.find(filter) != std::string::npos; }

// |got - want| <= atol + rtol |want| everywhere.
void check(const std::string& name, cudaError_t launch, const std::vector<float>& got, const std::vector<float>& want,
           float atol, float rtol) {
  const cudaError_t sync = cudaDeviceSynchronize();
  if (launch != cudaSuccess || sync != cudaSuccess) {
    std::printf("FAIL %s: %s\n", name.c_str(), cudaGetErrorString(launch != cudaSuccess ? launch : sync));
    failures++;
    return;
  }
  double worst = 0;
  size_t at = 0;
  bool ok = got.size() == want.size();
  for (size_t i = 0; ok && i < want.size(); i++) {
    const double d = std::fabs(double(got[i]) - double(want[i]));
    if (!(d <= atol + rtol * std::fabs(want[i]))) ok = false, at = i;
    worst = std::max(worst, d);
  }
  if (ok) {
    std::printf("PASS %s (max abs diff %.3g)\n", name.c_str(), worst);
  } else {
    std::printf("FAIL %s: index %zu got %g want %g\n", name.c_str(), at, at < got.size() ? got[at] : NAN,
                at < want.size() ? want[at] : NAN);
    failures++;
  }
}

void gemm_case(GemmPath path, int32_t format, int64_t M, int64_t K, int64_t N, int64_t lda, int32_t act,
               bool with_bias, bool residual_aliases_c) {
  const std::string name = "gemm path=" + std::to_string(path) + " format=" + std::to_string(format) + " M=" +
                           std::to_string(M) + " K=" + std::to_string(K) + " N=" + std::to_string(N) + " lda=" +
                           std::to_string(lda) + " act=" + std::to_string(act) + (with_bias ? " bias" : "") +
                           (residual_aliases_c ? " residual=C" : "");
  if (!wanted(name)) return;
  const int64_t ldc = N + 3, ldw = (N + 7) / 8 * 8;
  std::vector<float> A = randn(size_t(M) * lda), W = randn(size_t(K) * N, 0.2f), bias = randn(N);
  std::vector<float> C0 = randn(size_t(M) * ldc);
  // The weight as the device stores it: [K, ldw], fp32 or bf16 bits; the reference sees the
  // same (rounded) values.
  std::vector<float> w_f32(size_t(K) * ldw, 0.0f);
  std::vector<uint16_t> w_16(size_t(K) * ldw, 0);
  for (int64_t k = 0; k < K; k++)
    for (int64_t n = 0; n < N; n++) {
      w_16[k * ldw + n] = format == kWeightF16 ? f16_from_float(W[k * N + n]) : bf16_from_float(W[k * N + n]);
      W[k * N + n] = round_to_format(W[k * N + n], format);
      w_f32[k * ldw + n] = W[k * N + n];
    }
  DeviceWeight dw;
  dw.K = K, dw.N = N, dw.format = format;
  dw.data = format == kWeightF32 ? static_cast<void*>(dev(w_f32)) : static_cast<void*>(dev(w_16));
  float* dA = dev(A);
  float* dC = dev(C0);
  float* dbias = dev(bias);
  Epilogue ep, ref_ep;
  ep.bias = with_bias ? dbias : nullptr;
  ep.activation = act;
  ep.residual = residual_aliases_c ? dC : nullptr;
  ep.ldr = ldc;
  ref_ep = ep;
  ref_ep.bias = with_bias ? bias.data() : nullptr;
  std::vector<float> want = C0;
  ref_ep.residual = residual_aliases_c ? C0.data() : nullptr;
  const bool tensor_cores = path == kGemmTensorCore || (path == kGemmAuto && format != kWeightF32 && M > 8);
  matmul_reference(A.data(), M, lda, W.data(), K, N, want.data(), ldc, ref_ep, tensor_cores ? format : kWeightF32);
  const cudaError_t e = matmul(nullptr, dA, M, lda, dw, dC, ldc, ep, path);
  // fp32 paths: summation order only; bf16 operands: exact products, fp32 sums.
  check(name, e, host(dC, C0.size()), want, 1e-4f, 1e-4f);
}

void gemm_tests() {
  for (int32_t act : {kActNone, kActGeluNew})
    for (bool res : {false, true}) {
      gemm_case(kGemmF32Tiled, kWeightF32, 70, 40, 50, 40, act, true, res);   // 64-row tiles + tails
      gemm_case(kGemmF32Tiled, kWeightF32, 13, 33, 21, 35, act, true, res);   // 16-row tiles, scalar A
      gemm_case(kGemmSmallM, kWeightF32, 3, 64, 100, 64, act, true, res);
      gemm_case(kGemmSmallM, kWeightBF16, 1, 37, 19, 37, act, true, res);
      gemm_case(kGemmTensorCore, kWeightBF16, 70, 48, 72, 52, act, true, res);
      gemm_case(kGemmTensorCore, kWeightBF16, 9, 33, 21, 33, act, false, res);
      gemm_case(kGemmTensorCore, kWeightF16, 70, 48, 72, 52, act, true, res);
      gemm_case(kGemmSmallM, kWeightF16, 3, 37, 19, 37, act, true, res);
    }
  for (int32_t act : {kActGelu, kActRelu, kActSilu, kActTanh}) gemm_case(kGemmAuto, kWeightF32, 5, 16, 24, 16, act, true, false);
  gemm_case(kGemmSmallM, kWeightF32, 8, 20, 130, 20, kActNone, false, false);
  gemm_case(kGemmSmallM, kWeightBF16, 2, 300, 8200, 300, kActNone, true, true);  // N > 8192: 64-column blocks
  gemm_case(kGemmSmallM, kWeightF32, 5, 600, 40, 600, kActGeluNew, true, false);  // K > 128 slices
  gemm_case(kGemmAuto, kWeightBF16, 20, 64, 40, 64, kActNone, true, false);
}

void layernorm_tests() {
  for (bool res : {false, true})
    for (int64_t dim : {64, 70, 7}) {
      const std::string name = "layernorm dim=" + std::to_string(dim) + (res ? " residual, sum_out=x" : "");
      if (!wanted(name)) continue;
      const int64_t rows = 6, ldx = dim + 2, ldy = dim + 1;
      std::vector<float> x = randn(rows * ldx), r = randn(rows * ldx), g = randn(dim), b = randn(dim), y(rows * ldy, 0);
      float *dx = dev(x), *dr = dev(r), *dg = dev(g), *db = dev(b), *dy = dev(y);
      std::vector<float> want_y = y, want_sum = x;
      layernorm_reference(x.data(), ldx, res ? r.data() : nullptr, want_sum.data(), rows, dim, g.data(), b.data(), 1e-5f,
                          want_y.data(), ldy);
      const cudaError_t e = layernorm(nullptr, dx, ldx, res ? dr : nullptr, dx, rows, dim, dg, db, 1e-5f, dy, ldy);
      check(name, e, host(dy, y.size()), want_y, 1e-4f, 1e-4f);
      if (res) check(name + " (sum)", cudaSuccess, host(dx, x.size()), want_sum, 0, 0);
    }
}

void embedding_tests() {
  for (int64_t dim : {12, 7}) {
    const std::string name = "embed dim=" + std::to_string(dim);
    if (!wanted(name)) continue;
    const int64_t V = 11, P = 9, n = 6;
    std::vector<float> wte = randn(V * dim), wpe = randn(P * dim), out(n * dim, 0);
    std::vector<int32_t> ids = {3, 0, 10, 3, 7, 1}, pos = {0, 1, 2, 8, 4, 5};
    std::vector<float> want = out;
    embed_reference(ids.data(), pos.data(), n, wte.data(), wpe.data(), dim, want.data());
    float* dout = dev(out);
    const cudaError_t e = embed(nullptr, dev(ids), dev(pos), n, dev(wte), dev(wpe), dim, dout);
    check(name, e, host(dout, out.size()), want, 0, 0);

    const std::string gname = "gather_rows dim=" + std::to_string(dim);
    const int64_t ldx = dim + (dim % 4 == 0 ? 4 : 1);
    std::vector<float> x = randn(8 * ldx), g(4 * dim, 0), gwant(4 * dim, 0);
    std::vector<int32_t> rows = {7, 0, 3, 3};
    gather_rows_reference(x.data(), ldx, rows.data(), 4, dim, gwant.data());
    float* dg = dev(g);
    const cudaError_t ge = gather_rows(nullptr, dev(x), ldx, dev(rows), 4, dim, dg);
    check(gname, ge, host(dg, g.size()), gwant, 0, 0);
  }
}

// A paged cache with random contents and a shuffled block order, as the model builds it.
struct PagedCase {
  gpt2_cuda_attention_shape shape;
  std::vector<int32_t> q_start, q_len, kv_len, bt_start, tables;
  std::vector<float> k_pool, v_pool;
  int32_t num_blocks = 0;
};

PagedCase paged_case(int32_t n_head, int32_t hd, int32_t bs, const std::vector<int32_t>& q_len,
                     const std::vector<int32_t>& kv_len) {
  PagedCase c;
  c.shape = {n_head, hd, bs, 1.0f / std::sqrt(float(hd))};
  c.q_len = q_len;
  c.kv_len = kv_len;
  int32_t row = 0;
  for (size_t s = 0; s < q_len.size(); s++) {
    c.q_start.push_back(row);
    row += q_len[s];
    c.bt_start.push_back(int32_t(c.tables.size()));
    for (int32_t j = 0; j < (kv_len[s] + bs - 1) / bs; j++) c.tables.push_back(c.num_blocks++);
  }
  std::vector<int32_t> perm(c.num_blocks);
  for (int32_t i = 0; i < c.num_blocks; i++) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  for (int32_t& t : c.tables) t = perm[t];
  const size_t pool = size_t(c.num_blocks) * n_head * bs * hd;
  c.k_pool = randn(pool);
  c.v_pool = randn(pool);
  return c;
}

void attention_case(const std::string& label, int32_t n_head, int32_t hd, int32_t bs, const std::vector<int32_t>& q_len,
                    const std::vector<int32_t>& kv_len, int32_t split_keys) {
  const std::string name = "attention " + label + " heads=" + std::to_string(n_head) + " hd=" + std::to_string(hd) +
                           " bs=" + std::to_string(bs) + " split=" + std::to_string(split_keys);
  if (!wanted(name)) return;
  PagedCase c = paged_case(n_head, hd, bs, q_len, kv_len);
  int32_t rows = 0, max_q = 0, max_kv = 0;
  for (size_t s = 0; s < q_len.size(); s++) rows += q_len[s], max_q = std::max(max_q, q_len[s]), max_kv = std::max(max_kv, kv_len[s]);
  const int64_t ldq = 3 * int64_t(n_head) * hd, ldo = int64_t(n_head) * hd + 2;
  std::vector<float> q = randn(size_t(rows) * ldq), out(size_t(rows) * ldo, 0), want = out;
  gpt2_cuda_attention_batch hb{int32_t(q_len.size()), max_q, max_kv, c.q_start.data(), c.q_len.data(), c.kv_len.data(),
                               c.bt_start.data(), c.tables.data()};
  attention_reference(q.data(), ldq, hb, c.shape, c.k_pool.data(), c.v_pool.data(), want.data(), ldo);
  gpt2_cuda_attention_batch db = hb;
  db.q_start = dev(c.q_start), db.q_len = dev(c.q_len), db.kv_len = dev(c.kv_len), db.block_table_start = dev(c.bt_start),
  db.block_tables = dev(c.tables);
  float* dout = dev(out);
  const size_t ws = attention_workspace_bytes(hb, c.shape, split_keys);
  void* workspace = nullptr;
  if (ws) cudaMalloc(&workspace, ws);
  const cudaError_t e =
      attention(nullptr, dev(q), ldq, db, c.shape, dev(c.k_pool), dev(c.v_pool), dout, ldo, workspace, split_keys);
  check(name, e, host(dout, out.size()), want, 2e-5f, 1e-4f);
}

void attention_tests() {
  for (int32_t hd : {64, 16, 3}) {
    attention_case("prefill", 2, hd, 16, {20}, {20}, 0);
    attention_case("ragged prefill+past", 3, hd, 4, {5, 1, 17, 9}, {9, 40, 17, 9}, 0);
    attention_case("decode", 2, hd, 16, {1, 1, 1}, {1, 37, 100}, 0);
    attention_case("decode split-KV", 2, hd, 4, {1, 1, 1}, {1, 37, 100}, 32);
  }
  attention_case("prefill wide head", 1, 200, 8, {3, 2}, {35, 2}, 0);
  attention_case("decode wide head", 1, 200, 8, {1, 1}, {70, 3}, 32);
}

void kv_cache_tests() {
  if (!wanted("kv_append")) return;
  gpt2_cuda_attention_shape s{3, 5, 4, 1.0f};
  const int32_t blocks = 6, n = 7;
  const int64_t ld = 3 * 15 + 1;
  const size_t pool = size_t(blocks) * 3 * 4 * 5;
  std::vector<float> k = randn(n * ld), v = randn(n * ld), kp = randn(pool), vp = randn(pool);
  std::vector<int32_t> slots = {0, 5, 6, 7, 23, 12, 1};
  std::vector<float> kw = kp, vw = vp;
  kv_append_reference(k.data(), ld, v.data(), ld, slots.data(), n, s, kw.data(), vw.data());
  float *dkp = dev(kp), *dvp = dev(vp);
  const cudaError_t e = kv_append(nullptr, dev(k), ld, dev(v), ld, dev(slots), n, s, dkp, dvp);
  check("kv_append (keys)", e, host(dkp, pool), kw, 0, 0);
  check("kv_append (values)", cudaSuccess, host(dvp, pool), vw, 0, 0);

  // copy_kv_blocks over 2 layers: block 1 -> 4, 2 -> 0.
  const int64_t block_floats = 3 * 4 * 5, stride = block_floats * blocks;
  std::vector<float> k2 = randn(2 * stride), v2 = randn(2 * stride);
  std::vector<float> kw2 = k2, vw2 = v2;
  const int32_t src[] = {1, 2}, dst[] = {4, 0};
  for (int l = 0; l < 2; l++)
    for (int i = 0; i < 2; i++)
      for (int64_t f = 0; f < block_floats; f++) {
        kw2[l * stride + dst[i] * block_floats + f] = k2[l * stride + src[i] * block_floats + f];
        vw2[l * stride + dst[i] * block_floats + f] = v2[l * stride + src[i] * block_floats + f];
      }
  float *dk2 = dev(k2), *dv2 = dev(v2);
  const cudaError_t e2 = copy_kv_blocks(nullptr, dk2, dv2, stride, 2, block_floats, src, dst, 2);
  check("copy_kv_blocks (keys)", e2, host(dk2, k2.size()), kw2, 0, 0);
  check("copy_kv_blocks (values)", cudaSuccess, host(dv2, v2.size()), vw2, 0, 0);
}

void sampling_tests() {
  const int64_t vocab = 1000, ld = vocab + 5, rows = 24;
  std::vector<float> logits = randn(size_t(rows) * ld, 3.0f);
  logits[2 * ld + 17] = logits[2 * ld + 900] = 50.0f;  // a tie for the greedy row 2: id 17 wins
  const float* d_logits = dev(logits);
  struct Config { const char* name; float temperature; int32_t top_k; float top_p; };
  for (const Config& c : {Config{"greedy", 0.0f, 0, 1.0f}, Config{"temperature", 0.8f, 0, 1.0f}, Config{"top_k", 1.0f, 5, 1.0f},
                          Config{"top_p", 1.2f, 0, 0.9f}, Config{"top_k+top_p", 0.7f, 50, 0.5f}, Config{"top_k=1", 2.0f, 1, 1.0f}}) {
    const std::string name = std::string("sample ") + c.name;
    if (!wanted(name)) continue;
    std::vector<SamplingParams> params(rows);
    std::vector<float> want(rows);
    for (int64_t r = 0; r < rows; r++) {
      params[r] = {c.temperature, c.top_k, c.top_p, 0, uint64_t(1000 + 7 * r)};
      want[r] = float(sample_reference(logits.data() + r * ld, vocab, params[r]));
    }
    int32_t* d_ids = dev(std::vector<int32_t>(rows, -1));
    const cudaError_t e = sample(nullptr, d_logits, rows, vocab, ld, dev(params), d_ids);
    std::vector<int32_t> ids = host(d_ids, rows);
    check(name, e, std::vector<float>(ids.begin(), ids.end()), want, 0, 0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) filter = argv[1];
  gemm_tests();
  layernorm_tests();
  embedding_tests();
  kv_cache_tests();
  attention_tests();
  sampling_tests();
  std::printf("%s: %d failed\n", failures ? "FAILED" : "OK", failures);
  return failures ? 1 : 0;
}
