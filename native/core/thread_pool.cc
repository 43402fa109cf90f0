#include "core/thread_pool.h"

#include <algorithm>
#include <immintrin.h>

namespace gpt2 {

ThreadPool::ThreadPool(int threads) {
  threads = std::max(1, threads);
  for (int i = 1; i < threads; i++) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

int ThreadPool::default_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool& ThreadPool::shared(int threads) {
  // Leaked on purpose: worker threads must not be joined during static destruction,
  // which may run while another thread still uses the pool.
  static ThreadPool* pool = new ThreadPool(threads > 0 ? threads : default_threads());
  return *pool;
}

void ThreadPool::work(int thread_id) {
  for (;;) {
    const int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= n_) break;
    try {
      (*task_)(i, thread_id);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
      next_.store(n_, std::memory_order_relaxed);  // stop handing out work
    }
  }
}

void ThreadPool::worker_loop(int thread_id) {
  uint64_t seen = 0;
  for (;;) {
    // Spin a little: regions come back to back during a forward pass.
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < 20000; spin++) {
      _mm_pause();
      gen = generation_.load(std::memory_order_acquire);
    }
    bool participate;
    {
      // Read the generation and its parameters together, so a worker that lagged
      // behind never joins a region twice.
      std::unique_lock<std::mutex> lock(mutex_);
      if (gen == seen) wake_.wait(lock, [&] { return generation_.load() != seen; });
      seen = generation_.load();
      if (stop_) return;
      participate = thread_id < active_threads_ && pending_.load() > 0 && task_ != nullptr;
    }
    if (participate) {
      work(thread_id);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_one();
      }
    }
  }
}

void ThreadPool::run(int64_t n, const Task& task, int max_threads) {
  if (n <= 0) return;
  int threads = size();
  if (max_threads > 0) threads = std::min(threads, max_threads);
  threads = static_cast<int>(std::min<int64_t>(threads, n));
  if (threads == 1) {
    for (int64_t i = 0; i < n; i++) task(i, 0);
    return;
  }
  std::lock_guard<std::mutex> region(region_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &task;
    n_ = n;
    active_threads_ = threads;
    error_ = nullptr;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(threads - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  work(0);
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0 && spin < 200000; spin++) _mm_pause();
  if (pending_.load(std::memory_order_acquire) != 0) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_.load() == 0; });
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = nullptr;
  }
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int max_threads) {
  if (n <= 0) return;
  int threads = size();
  if (max_threads > 0) threads = std::min(threads, max_threads);
  threads = static_cast<int>(std::min<int64_t>(threads, n));
  run(threads, [&](int64_t t, int thread_id) {
    const int64_t begin = n * t / threads, end = n * (t + 1) / threads;
    fn(begin, end, thread_id);
  }, threads);
}

}  // namespace gpt2
