// One persistent pool of compute threads per process. Parallel regions are short
// (one GEMM, one attention call), so workers spin briefly before sleeping, and the
// calling thread does a share of the work itself. Regions from different callers
// (two models, two engine threads) are serialized: the cores are the shared resource,
// and oversubscribing them only adds context switches.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gpt2 {

class ThreadPool {
 public:
  // task(index, thread_id): thread_id in [0, size()), stable within one region, for
  // per-thread scratch buffers.
  using Task = std::function<void(int64_t index, int thread_id)>;

  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs task(i) for i in [0, n) on up to max_threads threads (0 = all) and returns
  // when all are done. Work is handed out dynamically in order, one index at a time,
  // so give it chunks of real size. The first exception thrown by a task is rethrown.
  void run(int64_t n, const Task& task, int max_threads = 0);

  // Static split of [0, n) into size() contiguous ranges: fn(begin, end, thread_id).
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int max_threads = 0);

  // The process-wide pool. The first call fixes its size (threads <= 0: hardware
  // concurrency); later calls return the same pool.
  static ThreadPool& shared(int threads = 0);
  static int default_threads();

 private:
  void worker_loop(int thread_id);
  void work(int thread_id);

  std::vector<std::thread> workers_;
  std::mutex region_mutex_;  // one region at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const Task* task_ = nullptr;
  int64_t n_ = 0;
  int active_threads_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
  std::exception_ptr error_;
  std::mutex error_mutex_;
};

}  // namespace gpt2
