#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/thread_pool.h"
#include "tests/test_main.h"

using namespace gpt2;

TEST(every_index_runs_once_across_many_regions) {
  ThreadPool pool(3);
  for (int region = 0; region < 3000; region++) {
    const int64_t n = 1 + region % 37;
    std::vector<std::atomic<int>> hits(n);
    pool.run(n, [&](int64_t i, int tid) {
      CHECK(tid >= 0 && tid < pool.size());
      hits[i].fetch_add(1);
    });
    for (auto& h : hits) CHECK(h.load() == 1);
  }
}

TEST(parallel_for_covers_the_range) {
  ThreadPool pool(2);
  std::vector<int> v(1001, 0);
  pool.parallel_for(1001, [&](int64_t b, int64_t e, int) { for (int64_t i = b; i < e; i++) v[i]++; });
  for (int x : v) CHECK(x == 1);
}

TEST(exceptions_propagate_and_pool_stays_usable) {
  ThreadPool pool(2);
  CHECK_THROWS(pool.run(100, [&](int64_t i, int) { if (i == 17) throw std::runtime_error("boom"); }));
  std::atomic<int> count{0};
  pool.run(100, [&](int64_t, int) { count++; });
  CHECK(count.load() == 100);
}

TEST(nested_run_is_serial_not_deadlock) {
  ThreadPool pool(2);
  std::atomic<int> count{0};
  pool.run(4, [&](int64_t, int) { pool.run(5, [&](int64_t, int) { count++; }); });
  CHECK(count.load() == 20);
}

TEST(concurrent_callers_are_serialized) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; c++)
    callers.emplace_back([&] {
      for (int r = 0; r < 300; r++) pool.run(8, [&](int64_t i, int) { sum += i; });
    });
  for (auto& t : callers) t.join();
  CHECK(sum.load() == 3 * 300 * 28);
}

TEST_MAIN()
