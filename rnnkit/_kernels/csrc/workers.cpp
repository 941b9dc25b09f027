// The pool behind common.h's workers::run: helpers that claim blocks of the caller's region,
// spin briefly when idle and then sleep.
#include "common.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <pthread.h>
#include <torch/library.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern "C" {
// MKL's per-thread thread count (see gemm.cpp). Weak: absent from other BLAS builds.
int MKL_Set_Num_Threads_Local(int threads) __attribute__((weak));
}

namespace rnnkit {
namespace workers {
namespace {

using Clock = std::chrono::steady_clock;

// How long a thread spins before it sleeps: an idle helper waiting for the next region (the
// regions of one call follow each other within microseconds; a sleeping helper costs a
// wake-up of ~10-50 us), and a caller waiting for a helper's block. Short enough that a
// process beside us loses little.
constexpr auto kSpin = std::chrono::microseconds(100);

inline void pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spin until ready() or kSpin has passed; whether ready() held.
template <typename Ready>
bool spin_until(const Ready& ready) {
  const auto until = Clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      pause();
    }
    if (Clock::now() >= until) return ready();
  }
}

// ceil(quota / period) of the CPU controller's limit, or 0 when there is none (or none can be
// read): cgroup v2 "cpu.max" ("max 100000" or "50000 100000"), v1 cpu.cfs_quota_us (-1: none)
// and cpu.cfs_period_us, at the usual mount points of the process's own cgroup (a container's
// root is its own).
int64_t read_quota() {
  auto cpus = [](double quota, double period) -> int64_t {
    if (quota <= 0 || period <= 0) return 0;
    return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(quota / period)));
  };
  std::string v2_path = "/";
  {
    std::ifstream groups("/proc/self/cgroup");
    std::string line;
    while (std::getline(groups, line)) {
      if (line.rfind("0::", 0) == 0) v2_path = line.substr(3);
    }
  }
  for (const std::string dir : {"/sys/fs/cgroup" + v2_path, std::string("/sys/fs/cgroup")}) {
    std::ifstream max(dir + "/cpu.max");
    std::string quota;
    double period = 0;
    if (max >> quota >> period) return quota == "max" ? 0 : cpus(std::stod(quota), period);
  }
  for (const char* dir : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"}) {
    std::ifstream quota_file(std::string(dir) + "/cpu.cfs_quota_us");
    std::ifstream period_file(std::string(dir) + "/cpu.cfs_period_us");
    double quota = 0, period = 0;
    if (quota_file >> quota && period_file >> period) return cpus(quota, period);
  }
  return 0;
}

int64_t quota_cpus() {
  static const int64_t cpus = [] {
    try {
      return read_quota();
    } catch (const std::exception&) {  // a malformed file: no limit known
      return int64_t{0};
    }
  }();
  return cpus;
}

thread_local bool in_region = false;

// Back-off from threads that the machine does not give us. After a region in which the caller
// waited for a helper's block longer than it worked itself (the helper was descheduled, or
// shares its core with another process), regions run on the caller alone for a while: twice
// as long after each such region in a row (kSoloMin to kSoloMax), then one region tries the
// helpers again. A quiet machine never waits that long; a busy one then loses at most one
// region's wait per back-off period, instead of one per region.
constexpr int64_t kSoloMin = 2'000'000, kSoloMax = 500'000'000;  // nanoseconds
std::atomic<int64_t> solo_until{0}, solo_length{kSoloMin};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

bool solo_now() { return now_ns() < solo_until.load(std::memory_order_relaxed); }

void record_region(int64_t worked_ns, int64_t waited_ns) {
  constexpr int64_t kNoticeable = 50'000;  // waits below 50 us are a wake-up's cost, not a stall
  if (waited_ns > kNoticeable && waited_ns > worked_ns) {
    const int64_t length = solo_length.load(std::memory_order_relaxed);
    solo_until.store(now_ns() + length, std::memory_order_relaxed);
    solo_length.store(std::min(kSoloMax, 2 * length), std::memory_order_relaxed);
  } else {
    solo_length.store(kSoloMin, std::memory_order_relaxed);
  }
}

// MKL held to one thread on this thread for the scope (restored after).
class SingleThreadedBlas {
 public:
  SingleThreadedBlas()
      : set_(MKL_Set_Num_Threads_Local != nullptr),
        previous_(set_ ? MKL_Set_Num_Threads_Local(1) : 0) {}
  ~SingleThreadedBlas() {
    if (set_) MKL_Set_Num_Threads_Local(previous_);
  }

 private:
  bool set_;
  int previous_;
};

class Pool {
 public:
  // Runs the region; false when another thread's region holds the pool (run it inline).
  bool run(int64_t blocks, int64_t threads, Body body, const void* context) {
    if (busy_.exchange(true, std::memory_order_acquire)) return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (static_cast<int64_t>(helpers_) < threads - 1) {
        std::thread(&Pool::helper, this, static_cast<int64_t>(helpers_)).detach();
        ++helpers_;
      }
      body_ = body;
      context_ = context;
      blocks_ = blocks;
      next_ = 0;
      taking_ = threads - 1;
      error_ = nullptr;
      done_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    const int64_t start = now_ns();
    work(-1);  // the caller takes blocks like any helper
    const int64_t worked = now_ns();
    if (!spin_until([&] { return done_.load(std::memory_order_acquire) == blocks; })) {
      std::unique_lock<std::mutex> lock(mutex_);
      finished_.wait(lock, [&] { return done_.load(std::memory_order_acquire) == blocks; });
    }
    record_region(worked - start, now_ns() - worked);
    std::exception_ptr error;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks_ = 0;  // nothing left to claim: a helper that wakes now goes back to sleep
      error = error_;
    }
    busy_.store(false, std::memory_order_release);
    if (error) std::rethrow_exception(error);
    return true;
  }

 private:
  // Take and run blocks of the current region until none is left (helper `id`, or -1 for the
  // caller). The body is read with each claim: a helper late for one region may find the
  // next one posted meanwhile.
  void work(int64_t id) {
    for (;;) {
      Body body;
      const void* context;
      int64_t block, blocks;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (next_ >= blocks_ || id >= taking_) return;  // taking_: this region's helpers
        block = next_++;
        blocks = blocks_;
        body = body_;
        context = context_;
      }
      try {
        body(context, block);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == blocks) {
        std::lock_guard<std::mutex> lock(mutex_);  // the caller checks under it: no lost wake-up
        finished_.notify_all();
      }
    }
  }

  void helper(int64_t id) {
    in_region = true;  // a body that starts a region runs it inline
    if (MKL_Set_Num_Threads_Local != nullptr) MKL_Set_Num_Threads_Local(1);
    uint64_t seen = 0;
    for (;;) {
      auto posted = [&] { return generation_.load(std::memory_order_acquire) != seen; };
      if (!spin_until(posted)) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, posted);
      }
      seen = generation_.load(std::memory_order_acquire);
      work(id);
    }
  }

  std::atomic<bool> busy_{false};
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  size_t helpers_ = 0;
  // the region (guarded by mutex_)
  Body body_ = nullptr;
  const void* context_ = nullptr;
  int64_t blocks_ = 0, next_ = 0, taking_ = 0;
  std::exception_ptr error_;
  std::atomic<int64_t> done_{0};
  std::atomic<uint64_t> generation_{0};
};

// The process's pool, made on first use and never destroyed (helpers may still wait on it at
// exit). A child made by fork() has none of the parent's helpers: it makes its own.
std::atomic<Pool*> the_pool{nullptr};
std::mutex pool_mutex;

Pool& pool() {
  Pool* p = the_pool.load(std::memory_order_acquire);
  if (p != nullptr) return *p;
  std::lock_guard<std::mutex> lock(pool_mutex);
  p = the_pool.load(std::memory_order_relaxed);
  if (p == nullptr) {
    static const int registered = pthread_atfork(
        nullptr, nullptr, [] { the_pool.store(nullptr, std::memory_order_relaxed); });
    (void)registered;
    p = new Pool();
    the_pool.store(p, std::memory_order_release);
  }
  return *p;
}

}  // namespace

int64_t usable_threads() {
  int64_t threads = at::get_num_threads();
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    threads = std::min<int64_t>(threads, CPU_COUNT(&set));
  }
  const int64_t quota = quota_cpus();
  if (quota > 0) threads = std::min(threads, quota);
  if (threads > 1 && solo_now()) return 1;
  return std::max<int64_t>(1, threads);
}

bool inside() { return in_region || at::in_parallel_region(); }

void run(int64_t blocks, int64_t threads, Body body, const void* context) {
  auto inline_all = [&] {
    for (int64_t b = 0; b < blocks; ++b) body(context, b);
  };
  if (blocks <= 0) return;
  if (threads <= 1 || blocks == 1 || inside()) return inline_all();
  struct Region {  // this thread is inside a region for the duration, the BLAS on one thread
    Region() { in_region = true; }
    ~Region() { in_region = false; }
  } region;
  const SingleThreadedBlas blas;
  if (!pool().run(blocks, std::min(threads, blocks), body, context)) inline_all();
}

}  // namespace workers
}  // namespace rnnkit

// For tests: the thread count a region started now would use.
TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("_usable_threads() -> int", &rnnkit::workers::usable_threads);
}
