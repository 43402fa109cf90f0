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
  // A region's tasks are claimed from ticket_ = (generation << 32) | next index. A
  // worker reads n_/task_ after the ticket and claims with a CAS on the same ticket,
  // so a worker that wakes late can never claim a task of a later region. The caller
  // waits only for tasks that were claimed, never for a worker that was not scheduled.
  static constexpr uint64_t kClosed = 0xFFFFFFFFull;
  bool claim(uint64_t& ticket, int64_t& index, const Task*& task);
  void finish_task();
  void worker_loop(int thread_id);

  std::vector<std::thread> workers_;
  std::mutex region_mutex_;  // one region at a time
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> ticket_{kClosed};
  std::atomic<int64_t> n_{0};
  std::atomic<const Task*> task_{nullptr};
  std::atomic<int64_t> done_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
  std::mutex error_mutex_;
};

}  // namespace gpt2
