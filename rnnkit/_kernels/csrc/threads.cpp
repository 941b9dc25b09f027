// The thread policy of the compiled loops (threads.h) and its operators:
//   rnnkit::thread_policy() -> float[]   a fresh sample and the decision: [threads,
//       torch_threads, online_cpus, affinity_cpus, quota_cpus, running, running_ours,
//       load_aware] (rnnkit._kernels.threads.thread_policy names them)
//   rnnkit::_thread_plan(...) -> int, rnnkit::_loadavg_running(str) -> int,
//   rnnkit::_stat_running(str) -> bool, rnnkit::_cgroup_quota(str, str) -> float
//       the pure pieces, for the tests (tests/kernels/test_threads.py)
#include "threads.h"

#include <ATen/Parallel.h>
#include <ATen/ops/sum.h>
#include <torch/library.h>

#include <dirent.h>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
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

AsTeamThread::AsTeamThread()
    : previous_omp_(omp_get_max_threads()),
      previous_mkl_(MKL_Set_Num_Threads_Local != nullptr ? MKL_Set_Num_Threads_Local(1) : 0) {
  omp_set_num_threads(1);
}

AsTeamThread::~AsTeamThread() {
  omp_set_num_threads(previous_omp_);
  if (MKL_Set_Num_Threads_Local != nullptr) MKL_Set_Num_Threads_Local(previous_mkl_);
}

at::Tensor sum_rows(const at::Tensor& flat) {
  if (at::get_num_threads() > 1 && threads_now() <= 1) {
    const AsTeamThread alone;
    return flat.sum(0);
  }
  return flat.sum(0);
}

namespace {

std::vector<double> thread_policy() {
  const Machine m = sample();
  const int64_t threads = decide(m);
  return {double(threads),          double(m.torch_threads), double(m.online_cpus),
          double(m.affinity_cpus),  m.quota_cpus,            double(m.running),
          double(m.running_ours),   m.load_aware ? 1.0 : 0.0};
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
  m.def("_loadavg_running(str text) -> int",
        [](std::string text) -> int64_t { return loadavg_running(text); });
  m.def("_stat_running(str text) -> bool",
        [](std::string text) -> bool { return stat_running(text); });
  m.def("_cgroup_quota(str proc_cgroup, str root) -> float",
        [](std::string proc_cgroup, std::string root) -> double {
          return cgroup_quota(proc_cgroup, root);
        });
}
