// The thread policy of the compiled loops (threads.h) and its operators:
//   rnnkit::thread_policy() -> float[]   a fresh sample and the decision: [threads,
//       torch_threads, online_cpus, affinity_cpus, quota_cpus, running, running_ours,
//       load_aware] (rnnkit._kernels.threads.thread_policy names them)
//   rnnkit::_thread_plan(...) -> int, rnnkit::_loadavg_running(str) -> int,
//   rnnkit::_stat_running(str) -> bool, rnnkit::_cgroup_quota(str, str) -> float
//       the pure pieces, for the tests (tests/kernels/test_threads.py)
//   rnnkit::_in_blocks_check(int, int, int, bool) -> int[], rnnkit::_sum_rows(Tensor) -> Tensor
//       in_blocks and sum_rows, for the same tests
#include "threads.h"

#include <ATen/Parallel.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <dirent.h>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <vector>

extern "C" {
// MKL's per-thread thread count (returns the previous setting; 0 means "the global one"); weak:
// absent when torch's BLAS is not MKL.
int MKL_Set_Num_Threads_Local(int threads) __attribute__((weak));
}

namespace rnnkit {
namespace threads {

int64_t plan(const Machine& m) {
  int64_t allowed = std::max<int64_t>(1, m.torch_threads);
  if (m.affinity_cpus > 0) allowed = std::min(allowed, m.affinity_cpus);
  if (m.quota_cpus > 0) {
    allowed = std::min(allowed, std::max<int64_t>(1, static_cast<int64_t>(std::ceil(m.quota_cpus))));
  }
  if (!m.load_aware || m.online_cpus <= 0 || m.running < 0 || m.running_ours < 0) return allowed;
  const int64_t others = std::max<int64_t>(0, m.running - m.running_ours);
  const int64_t free = std::max<int64_t>(1, m.online_cpus - others);
  return std::min(allowed, free);
}

int64_t loadavg_running(const std::string& text) {
  std::istringstream in(text);
  std::string field;
  for (int i = 0; i < 4 && (in >> field); ++i) {
    if (i < 3) continue;
    const size_t slash = field.find('/');
    if (slash == 0 || slash == std::string::npos) return -1;
    char* end = nullptr;
    const long long running = std::strtoll(field.c_str(), &end, 10);
    return end == field.c_str() + slash && running >= 0 ? running : -1;
  }
  return -1;
}

bool stat_running(const std::string& text) {
  // "tid (comm) S ...": the command may hold spaces and parentheses, the state follows the last ')'
  const size_t close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 1] == ' ' &&
         text[close + 2] == 'R';
}

namespace {

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  out = text.str();
  return true;
}

// A quota in CPUs from cgroup v2's cpu.max ("max 100000" / "50000 100000"), 0 for none.
double quota_v2(const std::string& text) {
  std::istringstream in(text);
  std::string quota;
  double period = 0;
  if (!(in >> quota) || quota == "max" || !(in >> period) || period <= 0) return 0;
  const double q = std::strtod(quota.c_str(), nullptr);
  return q > 0 ? q / period : 0;
}

// A quota in CPUs from cgroup v1's cpu.cfs_quota_us ("-1": none) and cpu.cfs_period_us.
double quota_v1(const std::string& quota, const std::string& period) {
  const double q = std::strtod(quota.c_str(), nullptr), p = std::strtod(period.c_str(), nullptr);
  return q > 0 && p > 0 ? q / p : 0;
}

// The smallest positive quota of `dir` + path and each of its ancestors up to `dir`.
template <typename Read>
double smallest_up(const std::string& dir, std::string path, const Read& read) {
  double best = 0;
  for (;;) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    const double q = read(dir + (path == "/" ? "" : path));
    if (q > 0 && (best == 0 || q < best)) best = q;
    if (path.empty() || path == "/") return best;
    const size_t slash = path.rfind('/');
    path = slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
  }
}

}  // namespace

double cgroup_quota(const std::string& proc_cgroup, const std::string& root) {
  double best = 0;
  auto keep = [&](double q) {
    if (q > 0 && (best == 0 || q < best)) best = q;
  };
  std::istringstream lines(proc_cgroup);
  std::string line;
  while (std::getline(lines, line)) {  // "id:controllers:path"
    const size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (line.compare(0, first, "0") == 0 && controllers.empty()) {  // v2
      keep(smallest_up(root, path, [](const std::string& dir) {
        std::string text;
        return read_file(dir + "/cpu.max", text) ? quota_v2(text) : 0.0;
      }));
      continue;
    }
    std::istringstream names(controllers);
    std::string name;
    bool cpu = false;
    while (std::getline(names, name, ',')) cpu = cpu || name == "cpu";
    if (!cpu) continue;
    // v1: the cpu controller is mounted under its own name or with cpuacct
    for (const char* mount : {"/cpu", "/cpu,cpuacct", "/cpuacct,cpu"}) {
      keep(smallest_up(root + mount, path, [](const std::string& dir) {
        std::string quota, period;
        return read_file(dir + "/cpu.cfs_quota_us", quota) &&
                       read_file(dir + "/cpu.cfs_period_us", period)
                   ? quota_v1(quota, period)
                   : 0.0;
      }));
    }
  }
  return best;
}

namespace {

int64_t running_in_this_process() {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  int64_t running = 0;
  std::string text;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    if (read_file(std::string("/proc/self/task/") + entry->d_name + "/stat", text) &&
        stat_running(text)) {
      ++running;
    }
  }
  closedir(dir);
  return running;
}

bool load_aware_setting() {
  const char* value = std::getenv("RNNKIT_LOAD_AWARE");
  return value != nullptr && std::strcmp(value, "1") == 0;
}

}  // namespace

Machine sample() {
  Machine m;
  m.torch_threads = at::get_num_threads();
  m.online_cpus = sysconf(_SC_NPROCESSORS_ONLN);
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) m.affinity_cpus = CPU_COUNT(&set);
  std::string text;
  if (read_file("/proc/self/cgroup", text)) m.quota_cpus = cgroup_quota(text, "/sys/fs/cgroup");
  m.load_aware = load_aware_setting();
  if (m.load_aware) {
    // this process's runnable threads first: the machine-wide count then includes at least
    // these (the thread reading both is among them)
    m.running_ours = running_in_this_process();
    if (read_file("/proc/loadavg", text)) m.running = loadavg_running(text);
  }
  return m;
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kSampleNanoseconds = 100'000'000;
std::atomic<int64_t> sampled_at{std::numeric_limits<int64_t>::min()};
std::atomic<int64_t> decided{1};
std::atomic<int64_t> decided_for{-1};  // the torch thread count the decision was made at

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// Decides for m and caches the decision.
int64_t decide(const Machine& m) {
  const int64_t threads = plan(m);
  decided.store(threads, std::memory_order_relaxed);
  decided_for.store(m.torch_threads, std::memory_order_relaxed);
  sampled_at.store(now_ns(), std::memory_order_relaxed);
  return threads;
}

}  // namespace

int64_t threads_now() {
  const int64_t t = now_ns();
  if (t - sampled_at.load(std::memory_order_relaxed) < kSampleNanoseconds &&
      decided_for.load(std::memory_order_relaxed) == at::get_num_threads()) {
    return decided.load(std::memory_order_relaxed);
  }
  return decide(sample());
}

AsTeamThread::AsTeamThread() {
  // torch sets a thread's OpenMP and MKL thread counts to its own on the thread's first
  // parallel call (lazy_init_num_threads, once per thread and library): that first call made
  // here, not inside a block, where it would undo the settings below
  at::get_num_threads();
  at::internal::lazy_init_num_threads();
  previous_omp_ = omp_get_max_threads();
  previous_mkl_ = MKL_Set_Num_Threads_Local != nullptr ? MKL_Set_Num_Threads_Local(1) : 0;
  omp_set_num_threads(1);
}

AsTeamThread::~AsTeamThread() {
  omp_set_num_threads(previous_omp_);
  if (MKL_Set_Num_Threads_Local != nullptr) MKL_Set_Num_Threads_Local(previous_mkl_);
}

namespace {

// Set on a thread while it runs blocks: the workers always, the caller while it takes blocks.
thread_local bool running_blocks = false;

// One in_blocks call: its blocks, handed out by `next`; the caller waits on `finished` for
// `done` to reach `blocks`. Held by shared pointers: a worker that wakes after the call
// returned still holds the job it looked at (and finds no block in it).
struct Job {
  void (*call)(const void*, int64_t);
  const void* context;
  int64_t blocks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::atomic<int64_t> seats;  // workers that may still join (threads - 1 at the start)
  std::atomic_flag failed = ATOMIC_FLAG_INIT;
  std::exception_ptr error;    // the first block's exception (written by whoever set `failed`)
  std::mutex mutex;
  std::condition_variable finished;

  Job(void (*c)(const void*, int64_t), const void* x, int64_t n, int64_t workers)
      : call(c), context(x), blocks(n), seats(workers) {}

  // Takes blocks until none is left. `context` is only read for a block taken, and the caller
  // does not return before every taken block is done, so it is alive whenever it is read.
  void work() {
    for (int64_t i = next.fetch_add(1); i < blocks; i = next.fetch_add(1)) {
      try {
        call(context, i);
      } catch (...) {
        if (!failed.test_and_set()) error = std::current_exception();
      }
      if (done.fetch_add(1) + 1 == blocks) {
        const std::lock_guard<std::mutex> lock(mutex);  // the caller checks under it
        finished.notify_all();
      }
    }
  }

  bool complete() const { return done.load() == blocks; }
};

constexpr int64_t kSpinMicroseconds = 50;

// Spins (with the CPU's pause hint) until ready() or kSpinMicroseconds have passed.
template <typename Ready>
bool spin_until(const Ready& ready) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicroseconds);
  for (int i = 1;; ++i) {
    if (ready()) return true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if (i % 64 == 0 && std::chrono::steady_clock::now() >= until) return ready();
  }
}

// The worker threads. They never exit (detached; the process ends with them asleep). After a
// fork the child has none of them: it makes a new pool (the parent's, whose mutex another
// thread may have held at the fork, is left alone).
class Pool {
 public:
  // Offers `job` to the workers (starting more, up to `workers`), or returns false when
  // another call holds the workers.
  bool offer(const std::shared_ptr<Job>& job, int64_t workers) {
    if (busy_.exchange(true)) return false;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      while (started_ < workers) {
        std::thread(&Pool::worker, this).detach();
        ++started_;
      }
      job_ = job;
      generation_.fetch_add(1);
    }
    if (sleeping_.load() > 0) wake_.notify_all();
    return true;
  }

  void release() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      job_.reset();
    }
    busy_.store(false);
  }

  static Pool& get() {
    static const bool registered = [] {
      pthread_atfork(nullptr, nullptr, [] { current_.store(nullptr); });
      return true;
    }();
    (void)registered;
    Pool* pool = current_.load();
    if (pool == nullptr) {
      static std::mutex creating;
      const std::lock_guard<std::mutex> lock(creating);
      pool = current_.load();
      if (pool == nullptr) {
        pool = new Pool();  // never deleted: its workers run until the process ends
        current_.store(pool);
      }
    }
    return *pool;
  }

 private:
  void worker() {
    running_blocks = true;
    uint64_t seen = generation_.load();
    for (;;) {
      if (!spin_until([&] { return generation_.load() != seen; })) {
        std::unique_lock<std::mutex> lock(mutex_);
        sleeping_.fetch_add(1);
        wake_.wait(lock, [&] { return generation_.load() != seen; });
        sleeping_.fetch_sub(1);
      }
      std::shared_ptr<Job> job;
      {
        const std::lock_guard<std::mutex> lock(mutex_);
        seen = generation_.load();
        job = job_;
      }
      if (job != nullptr && job->seats.fetch_sub(1) > 0) {
        const AsTeamThread alone;
        job->work();
      }
    }
  }

  static std::atomic<Pool*> current_;
  std::atomic<bool> busy_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::shared_ptr<Job> job_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> sleeping_{0};
  int64_t started_ = 0;
};

std::atomic<Pool*> Pool::current_{nullptr};

// Runs the blocks in order on this thread, as a team thread would.
void run_here(int64_t blocks, void (*call)(const void*, int64_t), const void* context) {
  const AsTeamThread alone;
  const bool was = running_blocks;
  running_blocks = true;
  try {
    for (int64_t i = 0; i < blocks; ++i) call(context, i);
  } catch (...) {
    running_blocks = was;
    throw;
  }
  running_blocks = was;
}

}  // namespace

bool in_block() { return running_blocks; }

void run_blocks(int64_t blocks, int64_t threads, void (*call)(const void*, int64_t),
                const void* context) {
  if (blocks <= 0) return;
  threads = std::min(threads, blocks);
  if (threads <= 1 || running_blocks) return run_here(blocks, call, context);
  const auto job = std::make_shared<Job>(call, context, blocks, threads - 1);
  Pool& pool = Pool::get();
  if (!pool.offer(job, threads - 1)) return run_here(blocks, call, context);
  {
    const AsTeamThread alone;
    running_blocks = true;
    job->work();
    running_blocks = false;
  }
  if (!spin_until([&] { return job->complete(); })) {
    std::unique_lock<std::mutex> lock(job->mutex);
    job->finished.wait(lock, [&] { return job->complete(); });
  }
  pool.release();
  if (job->error) std::rethrow_exception(job->error);
}

namespace {

constexpr int64_t kSumColumns = 64;  // the columns of one block of sum_rows
constexpr int64_t kSumRows = 1024;   // rows summed before their sums join the total

// out[c0, c1) = the column sums of x (rows, with row stride ld) over [c0, c1), c1 - c0 <=
// kSumColumns: kSumRows rows at a time, in double, each part added to a double total. A
// column's arithmetic depends on its own values only, not on which columns share its block.
template <typename T>
void sum_columns(const T* x, int64_t rows, int64_t ld, int64_t c0, int64_t c1, T* out) {
  const int64_t width = c1 - c0;
  std::array<double, kSumColumns> total{}, part;
  for (int64_t r0 = 0; r0 < rows; r0 += kSumRows) {
    std::fill(part.begin(), part.begin() + width, 0.0);
    double* p = part.data();
    for (int64_t r = r0, r1 = std::min(rows, r0 + kSumRows); r < r1; ++r) {
      const T* row = x + r * ld + c0;
      for (int64_t j = 0; j < width; ++j) p[j] += row[j];
    }
    for (int64_t j = 0; j < width; ++j) total[j] += part[j];
  }
  for (int64_t j = 0; j < width; ++j) out[c0 + j] = static_cast<T>(total[j]);
}

}  // namespace

at::Tensor sum_rows(const at::Tensor& flat_in) {
  TORCH_CHECK(flat_in.dim() == 2, "sum_rows: expected a 2-D tensor, got shape ", flat_in.sizes());
  const at::Tensor flat = flat_in.stride(1) == 1 ? flat_in : flat_in.contiguous();
  const int64_t rows = flat.size(0), n = flat.size(1), ld = flat.stride(0);
  at::Tensor out = at::empty({n}, flat.options());
  constexpr int64_t kParallelElements = int64_t(1) << 16;  // below: ~20 us on one thread
  const int64_t blocks = (n + kSumColumns - 1) / kSumColumns;
  const int64_t threads =
      rows * n >= kParallelElements && at::get_num_threads() > 1 ? threads_now() : 1;
  AT_DISPATCH_FLOATING_TYPES(flat.scalar_type(), "sum_rows", [&] {
    const scalar_t* x = flat.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    in_blocks(blocks, threads, [&](int64_t b) {
      sum_columns(x, rows, ld, b * kSumColumns, std::min(n, (b + 1) * kSumColumns), o);
    });
  });
  return out;
}

namespace {

std::vector<double> thread_policy() {
  const Machine m = sample();
  const int64_t threads = decide(m);
  return {double(threads),          double(m.torch_threads), double(m.online_cpus),
          double(m.affinity_cpus),  m.quota_cpus,            double(m.running),
          double(m.running_ours),   m.load_aware ? 1.0 : 0.0};
}

// in_blocks over `blocks` blocks on up to `threads` threads, for the tests: each block counts
// its runs and the thread it ran on, throws when it is block `fail_at`, and with `nested` runs
// an in_blocks of its own, which must run on the same thread. Returns each block's run count,
// then how many distinct threads ran blocks, then how many nested calls stayed on their thread.
std::vector<int64_t> in_blocks_check(int64_t blocks, int64_t threads, int64_t fail_at,
                                     bool nested) {
  std::vector<std::atomic<int64_t>> runs(static_cast<size_t>(std::max<int64_t>(blocks, 0)));
  std::vector<std::thread::id> ran_on(runs.size());
  std::atomic<int64_t> stayed{0};
  in_blocks(blocks, threads, [&](int64_t i) {
    runs[i].fetch_add(1);
    ran_on[i] = std::this_thread::get_id();
    if (i == fail_at) throw std::runtime_error("block " + std::to_string(i) + " failed");
    if (!nested) return;
    std::atomic<int64_t> here{0};
    in_blocks(3, threads, [&](int64_t) {
      if (std::this_thread::get_id() == ran_on[i] && in_block()) here.fetch_add(1);
    });
    if (here.load() == 3) stayed.fetch_add(1);
  });
  std::vector<int64_t> out;
  for (const auto& r : runs) out.push_back(r.load());
  std::vector<std::thread::id> distinct(ran_on);
  std::sort(distinct.begin(), distinct.end());
  out.push_back(std::unique(distinct.begin(), distinct.end()) - distinct.begin());
  out.push_back(stayed.load());
  return out;
}

int64_t thread_plan_op(int64_t torch_threads, int64_t online_cpus, int64_t affinity_cpus,
                       double quota_cpus, int64_t running, int64_t running_ours,
                       bool load_aware) {
  return plan({torch_threads, online_cpus, affinity_cpus, quota_cpus, running, running_ours,
               load_aware});
}

}  // namespace
}  // namespace threads
}  // namespace rnnkit

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  using namespace rnnkit::threads;
  m.def("thread_policy() -> float[]", &thread_policy);
  m.def("_thread_plan(int torch_threads, int online_cpus, int affinity_cpus, float quota_cpus, "
        "int running, int running_ours, bool load_aware) -> int",
        &thread_plan_op);
  m.def("_in_blocks_check(int blocks, int threads, int fail_at, bool nested) -> int[]",
        &in_blocks_check);
  m.def("_sum_rows(Tensor flat) -> Tensor", &sum_rows);
  m.def("_loadavg_running(str text) -> int",
        [](std::string text) -> int64_t { return loadavg_running(text); });
  m.def("_stat_running(str text) -> bool",
        [](std::string text) -> bool { return stat_running(text); });
  m.def("_cgroup_quota(str proc_cgroup, str root) -> float",
        [](std::string proc_cgroup, std::string root) -> double {
          return cgroup_quota(proc_cgroup, root);
        });
}
