// A device round trip used by gpt2_cuda_self_test: upload x, compute y = a*x + b and one
// sum of y per block (warp shuffles, then shared memory), download both and compare with
// the same computation on the host. Small, but it exercises a real nvcc build, a launch,
// shuffles, shared memory and both copy directions, so a broken toolkit, driver or
// emulator shows up here before any model runs.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "plugin_internal.h"

namespace gpt2_cuda {
namespace {

constexpr int kBlock = 256;  // threads per block; a multiple of the warp size

// Lane index within the warp. The PTX register is exact for any block shape; cusim cannot
// run inline PTX, so it gets the twin below (equal for the 1-D blocks used here).
__device__ __forceinline__ unsigned lane_id() {
#ifdef __CUSIM__
  return threadIdx.x & 31u;
#else
  unsigned lane;
  asm volatile("mov.u32 %0, %%laneid;" : "=r"(lane));
  return lane;
#endif
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__global__ void axpb_block_sum(const float* x, float a, float b, int n, float* y, float* block_sums) {
  __shared__ float warp_sums[kBlock / 32];
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = 0.0f;
  if (i < n) {
    v = a * x[i] + b;
    y[i] = v;
  }
  v = warp_sum(v);
  if (lane_id() == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    float s = threadIdx.x < blockDim.x / 32 ? warp_sums[threadIdx.x] : 0.0f;
    s = warp_sum(s);
    if (threadIdx.x == 0) block_sums[blockIdx.x] = s;
  }
}

// Frees device buffers however the test ends.
struct DeviceBuffers {
  float* x = nullptr;
  float* y = nullptr;
  float* sums = nullptr;
  ~DeviceBuffers() {
    cudaFree(x);
    cudaFree(y);
    cudaFree(sums);
  }
};

gpt2_cuda_status run_self_test(int32_t device) {
  GPT2_CUDA_CHECK(cudaSetDevice(device));
  // Not a multiple of the block size, so the bounds check in the kernel matters. Values are
  // small integers: every product and sum is exact in float, so the check is exact.
  const int n = 3000;
  const int blocks = (n + kBlock - 1) / kBlock;
  const float a = 2.0f, b = 1.0f;
  std::vector<float> x(n), y(n), sums(blocks);
  for (int i = 0; i < n; i++) x[i] = static_cast<float>((i * 7) % 101) - 50.0f;

  DeviceBuffers d;
  GPT2_CUDA_CHECK(cudaMalloc(&d.x, n * sizeof(float)));
  GPT2_CUDA_CHECK(cudaMalloc(&d.y, n * sizeof(float)));
  GPT2_CUDA_CHECK(cudaMalloc(&d.sums, blocks * sizeof(float)));
  GPT2_CUDA_CHECK(cudaMemcpy(d.x, x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  axpb_block_sum<<<blocks, kBlock>>>(d.x, a, b, n, d.y, d.sums);
  GPT2_CUDA_CHECK(cudaGetLastError());
  GPT2_CUDA_CHECK(cudaDeviceSynchronize());
  GPT2_CUDA_CHECK(cudaMemcpy(y.data(), d.y, n * sizeof(float), cudaMemcpyDeviceToHost));
  GPT2_CUDA_CHECK(cudaMemcpy(sums.data(), d.sums, blocks * sizeof(float), cudaMemcpyDeviceToHost));

  for (int blk = 0; blk < blocks; blk++) {
    float expected_sum = 0.0f;
    for (int i = blk * kBlock; i < n && i < (blk + 1) * kBlock; i++) {
      float expected = a * x[i] + b;
      if (y[i] != expected) {
        return fail(GPT2_CUDA_ERROR_CHECK_FAILED, "gpt2_cuda_self_test: y[" + std::to_string(i) + "] = " +
                                                      std::to_string(y[i]) + ", expected " + std::to_string(expected));
      }
      expected_sum += expected;
    }
    if (sums[blk] != expected_sum) {
      return fail(GPT2_CUDA_ERROR_CHECK_FAILED, "gpt2_cuda_self_test: block " + std::to_string(blk) + " sum = " +
                                                    std::to_string(sums[blk]) + ", expected " +
                                                    std::to_string(expected_sum));
    }
  }
  return GPT2_CUDA_OK;
}

}  // namespace
}  // namespace gpt2_cuda

extern "C" GPT2_CUDA_API gpt2_cuda_status gpt2_cuda_self_test(int32_t device) {
  return gpt2_cuda::guarded("gpt2_cuda_self_test", [&] {
    gpt2_cuda_status s = gpt2_cuda::check_device("gpt2_cuda_self_test", device);
    if (s != GPT2_CUDA_OK) return s;
    return gpt2_cuda::run_self_test(device);
  });
}
