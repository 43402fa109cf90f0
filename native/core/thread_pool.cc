#include "core/thread_pool.h"

#include <algorithm>
#include <immintrin.h>

namespace gpt2 {

namespace {
inline uint32_t ticket_generation(uint64_t t) { return static_cast<uint32_t>(t >> 32); }
inline uint64_t ticket_index(uint64_t t) { return t & 0xFFFFFFFFull; }
// Set while a thread runs a region's tasks: a nested run() from inside a task runs
// serially on that thread instead of deadlocking on region_mutex_.
thread_local bool in_region = false;
struct RegionScope {
  RegionScope() { in_region = true; }
  ~RegionScope() { in_region = false; }
};
}  // namespace

ThreadPool::ThreadPool(int threads) {
  threads = std::max(1, threads);
  for (int i = 1; i < threads; i++) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(sleep_mutex_);
    stop_.store(true);
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

// Claims the next task of the current region. ticket holds the last ticket seen and is
// updated; false when the region has no unclaimed task left (or is closed).
bool ThreadPool::claim(uint64_t& ticket, int64_t& index, const Task*& task) {
  for (;;) {
    if (ticket_index(ticket) == kClosed) return false;
    const int64_t n = n_.load(std::memory_order_acquire);
    task = task_.load(std::memory_order_acquire);
    if (static_cast<int64_t>(ticket_index(ticket)) >= n) return false;
    // Succeeds only if no new region was published since ticket was read, so n and
    // task above belong to this ticket's region.
    if (ticket_.compare_exchange_weak(ticket, ticket + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
      index = static_cast<int64_t>(ticket_index(ticket));
      return true;
    }
  }
}

void ThreadPool::finish_task() { done_.fetch_add(1, std::memory_order_acq_rel); }

void ThreadPool::worker_loop(int thread_id) {
  uint32_t seen_generation = 0;
  for (;;) {
    uint64_t ticket = ticket_.load(std::memory_order_acquire);
    // Spin a little: regions come back to back during a forward pass.
    for (int spin = 0; spin < 4000 && (ticket_generation(ticket) == seen_generation ||
                                       ticket_index(ticket) == kClosed); spin++) {
      _mm_pause();
      ticket = ticket_.load(std::memory_order_acquire);
    }
    if (ticket_generation(ticket) == seen_generation || ticket_index(ticket) == kClosed) {
      std::unique_lock<std::mutex> lock(sleep_mutex_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      wake_.wait(lock, [&] {
        ticket = ticket_.load(std::memory_order_seq_cst);
        return stop_.load() || (ticket_generation(ticket) != seen_generation && ticket_index(ticket) != kClosed);
      });
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      if (stop_.load()) return;
    }
    seen_generation = ticket_generation(ticket);
    RegionScope scope;
    int64_t index;
    const Task* task;
    while (claim(ticket, index, task)) {
      if (!failed_.load(std::memory_order_relaxed)) {
        try {
          (*task)(index, thread_id);
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex_);
          if (!error_) error_ = std::current_exception();
          failed_.store(true);
        }
      }
      finish_task();
    }
  }
}

void ThreadPool::run(int64_t n, const Task& task, int max_threads) {
  if (n <= 0) return;
  int threads = size();
  if (max_threads > 0) threads = std::min(threads, max_threads);
  if (threads == 1 || n == 1 || in_region) {
    for (int64_t i = 0; i < n; i++) task(i, 0);
    return;
  }
  if (n >= static_cast<int64_t>(kClosed)) {
    // Keep ticket indices in 32 bits: run in slices.
    for (int64_t base = 0; base < n; base += kClosed - 1) {
      const int64_t count = std::min<int64_t>(kClosed - 1, n - base);
      run(count, [&](int64_t i, int t) { task(base + i, t); }, max_threads);
    }
    return;
  }
  std::lock_guard<std::mutex> region(region_mutex_);
  RegionScope scope;
  const uint32_t generation = ticket_generation(ticket_.load()) + 1;
  // Close first, so no worker can pair the old ticket with the new n/task.
  ticket_.store((uint64_t(generation) << 32) | kClosed, std::memory_order_seq_cst);
  n_.store(n, std::memory_order_release);
  task_.store(&task, std::memory_order_release);
  done_.store(0, std::memory_order_release);
  failed_.store(false);
  error_ = nullptr;
  ticket_.store(uint64_t(generation) << 32, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lock(sleep_mutex_);
    wake_.notify_all();
  }

  uint64_t ticket = ticket_.load(std::memory_order_acquire);
  int64_t index;
  const Task* claimed;
  while (claim(ticket, index, claimed)) {
    if (!failed_.load(std::memory_order_relaxed)) {
      try {
        task(index, 0);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
        failed_.store(true);
      }
    }
    finish_task();
  }
  // Wait only for tasks other threads claimed and are still running.
  for (int spin = 0; done_.load(std::memory_order_acquire) < n; spin++) {
    if (spin < 100000) _mm_pause();
    else std::this_thread::yield();
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
