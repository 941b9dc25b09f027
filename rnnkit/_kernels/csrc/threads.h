// How many threads the compiled loops run on: the thread policy of over_batch (common.h).
//
// Measured on the 2-core Intel machine (torch 2.13's OpenMP is GNU libgomp, whose idle team
// threads spin before they sleep): a loop split across two threads that runs beside other
// busy processes waits at the region's end for a thread the scheduler has not run yet, while
// the spinning team threads of everyone take the cores from the threads that have work. LSTM
// B=32 T=100 training took 20x its quiet time beside two multi-threaded torch processes on two
// threads (bench/results-contention-torch.json); interleaved on the loaded shared machine, one
// thread ran that step 2-5x and the inference call 15-350x faster than two. So a loop runs on
//
//     min(torch.get_num_threads(), CPUs in the affinity mask, ceil(cgroup CPU quota),
//         CPUs left free by other processes' runnable threads)
//
// threads, at least one. "Left free" is the online CPUs minus the runnable threads of the
// machine that are not this process's (/proc/loadavg's running count minus this process's
// threads in state R, /proc/self/task/*/stat): on a quiet machine it is every CPU, beside two
// busy loops on 2 cores one. The machine is sampled at most every 100 ms (a sample reads a few
// small /proc files, ~20-100 us) and the decision cached in between.
//
// The batch is cut into the same blocks whatever the policy decides: one per torch thread
// (over_batch), so every row sees the same arithmetic on a quiet and on a busy machine; the
// threads the policy grants take the blocks in turn, and with one thread they run one after
// the other on the calling thread.
//
// The load term is opt-in: RNNKIT_LOAD_AWARE=1 (read at each sample) turns it on; without it the
// loops use torch's thread count within the affinity mask and the quota. Measured on that
// machine (bench --contention, quiet 2-thread time as the base, two runs each), one thread when
// the machine looks busy helped training beside two multi-threaded torch processes (LSTM small
// 8.2-9.3x its quiet time against 13.5-17x, long 3.4-3.8x against 4.1-5.7x) but lost inference
// there (1.9-9.5x against 1.1-1.3x) and lost beside two busy loops (small training 3.7-4.2x
// against 2.5-2.7x: one thread gets a third of the cores where two get half). The operator
// rnnkit::thread_policy() reports a fresh sample and the decision (rnnkit._kernels.threads).
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

namespace rnnkit {
namespace threads {

// What the decision looks at; a field below zero (or a quota <= 0) is unknown / no limit.
struct Machine {
  int64_t torch_threads = 1;  // at::get_num_threads()
  int64_t online_cpus = -1;   // CPUs the kernel runs
  int64_t affinity_cpus = -1; // CPUs this process may run on
  double quota_cpus = 0;      // the cgroup's CPU bandwidth quota in CPUs (quota / period)
  int64_t running = -1;       // runnable threads on the machine, this process's included
  int64_t running_ours = -1;  // this process's runnable threads
  bool load_aware = false;    // RNNKIT_LOAD_AWARE is "1"
};

// The number of threads for a loop (>= 1): the formula above. Pure.
int64_t plan(const Machine& machine);

// The running count of /proc/loadavg's text ("0.52 0.61 0.70 3/412 9876" -> 3); -1 if malformed.
int64_t loadavg_running(const std::string& text);

// Whether a /proc/<pid>/task/<tid>/stat line is of a runnable thread (state R).
bool stat_running(const std::string& text);

// The CPU quota of the cgroups this process is in, in CPUs (0: none), from the text of
// /proc/self/cgroup and the cgroup file systems under `root` (/sys/fs/cgroup): cgroup v2's
// cpu.max ("max 100000", "50000 100000") and v1's cpu.cfs_quota_us / cpu.cfs_period_us of the
// cpu controller, the smallest along the path from the process's cgroup up to the root.
double cgroup_quota(const std::string& proc_cgroup, const std::string& root);

// This process and machine now (reads /proc and /sys).
Machine sample();

// The cached decision for a loop of torch's current thread count, resampled when older than
// 100 ms.
int64_t threads_now();

// While alive, this thread's torch operations and MKL products run on this thread alone, as
// in a team thread (so a block's arithmetic, and its speed, are those of a thread of the team):
// the OpenMP thread count of this thread (torch's parallel_for reads it; other threads keep
// theirs) and MKL's of this thread are set to one, and restored after.
class AsTeamThread {
 public:
  AsTeamThread();
  AsTeamThread(const AsTeamThread&) = delete;
  AsTeamThread& operator=(const AsTeamThread&) = delete;
  ~AsTeamThread();

 private:
  int previous_omp_ = 1;
  int previous_mkl_ = 0;
};

// flat (rows, n).sum(0) (the bias gradients: a sum over every step and row), on the calling
// thread alone when the policy grants one thread: torch's reduction is a parallel region of its
// own, which on a busy machine stalled as the loops did (58% of an LSTM training step beside
// other processes). Torch sums each column on one thread, so the bits do not depend on it.
at::Tensor sum_rows(const at::Tensor& flat);

}  // namespace threads
}  // namespace rnnkit
