// The thread hand-off of the recurrent kernels: how a kernel shares its work with other threads.
//
// Two ways to split a sequence op, both here:
// - ForEachBatchShard cuts the batch into contiguous blocks, one per thread at most. Examples are
//   independent through the whole recurrence, so each block runs its whole time loop with no
//   synchronisation between steps.
// - ForEachStepInParts runs every step in parts (ranges of units) that meet after each step: for
//   batches too small to share out, where each thread keeps its part of the weights in its own
//   core's cache.
//
// Invariants: every inter-op thread may itself be running such a kernel, so nothing waits for
// scheduled work that has not started. Work is claimed, not assigned: the calling thread takes
// every piece that no other thread has started, so a call finishes even when no other thread
// ever comes, and returns without waiting for threads that have not started (their tasks hold the
// shared counters by reference count, find every piece claimed and leave). No allocation or
// lock inside a step.
#ifndef ZOO_OPS_KERNELS_WORKERS_H_
#define ZOO_OPS_KERNELS_WORKERS_H_

#define EIGEN_USE_THREADS

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "unsupported/Eigen/CXX11/Tensor"

namespace zoo {
namespace rnn {

// The threads a kernel shares its work with. Work goes to the executor's runner (TensorFlow's
// inter-op pool) where the op has one, else to the device's intra-op pool: an inter-op thread
// that has just finished an op is still spinning and takes the work at once, where an intra-op
// thread may first have to wake up.
class Workers {
 public:
  using Runner = std::function<void(std::function<void()>)>;

  Workers(const Eigen::ThreadPoolDevice& device, Runner* runner)
      : device_(device), runner_(runner) {}

  const Eigen::ThreadPoolDevice& device() const { return device_; }
  int NumThreads() const { return device_.numThreads(); }

  void Schedule(std::function<void()> task) const {
    if (runner_ == nullptr) {
      device_.enqueueNoNotification(std::move(task));
      return;
    }
    // Eager execution's runner runs a closure at once on the calling thread, which would do the
    // whole task before sharing any of it: such a task goes to the intra-op pool instead.
    struct Handoff {
      std::function<void()> task;
      const Eigen::ThreadPoolDevice* device;
      std::thread::id caller;
      std::atomic<bool> in_call{true};
    };
    const auto handoff = std::make_shared<Handoff>();
    handoff->task = std::move(task);
    handoff->device = &device_;
    handoff->caller = std::this_thread::get_id();
    (*runner_)([handoff] {
      if (handoff->in_call.load(std::memory_order_acquire) &&
          std::this_thread::get_id() == handoff->caller) {
        handoff->device->enqueueNoNotification(std::move(handoff->task));
        return;
      }
      handoff->task();
    });
    handoff->in_call.store(false, std::memory_order_release);
  }

 private:
  const Eigen::ThreadPoolDevice& device_;
  Runner* const runner_;
};

// How many blocks ForEachBatchShard cuts a batch into: at most one per thread and per example.
inline int64_t BatchShards(const Workers& workers, int64_t batch, int64_t work_per_example) {
  // Below ~100k multiply-adds per example the hand-off costs more than it saves.
  constexpr int64_t kMinWorkPerShard = 100000;
  const int64_t shards = std::min<int64_t>(workers.NumThreads(), batch);
  return std::min<int64_t>(shards,
                           std::max<int64_t>(1, batch * work_per_example / kMinWorkPerShard));
}

// The most rows a block of ForEachBatchShard gets.
inline int64_t BatchShardRows(const Workers& workers, int64_t batch, int64_t work_per_example) {
  const int64_t shards = std::max<int64_t>(1, BatchShards(workers, batch, work_per_example));
  return (batch + shards - 1) / shards;
}

// Work that every block of a ForEachBatchShard needs done before it starts, in `parts`
// independent pieces that the threads share (the weights split for AMX tiles,
// PackedMatrix::Prepare).
struct SharedSetup {
  int parts;
  std::function<void(int)> run;
};

// The setup of a batch split whose products read `matrices` (PackedMatrix, TransposedWeights):
// their Prepare, in pieces enough for a thread that starts late to still find some.
template <typename... Matrices>
SharedSetup PrepareAll(const Matrices&... matrices) {
  constexpr int kParts = 8;
  return {kParts, [&matrices...](int part) { (matrices.Prepare(part, kParts), ...); }};
}

// Runs `shard(first_row, end_row)` over contiguous blocks of the batch on `workers`, after every
// piece of `setup`. Blocks are claimed: the calling thread takes every block that no other thread
// has started.
inline void ForEachBatchShard(const Workers& workers, int64_t batch, int64_t work_per_example,
                              const std::function<void(int64_t, int64_t)>& shard,
                              const SharedSetup& setup = {0, nullptr}) {
  const int64_t shards = BatchShards(workers, batch, work_per_example);
  if (shards <= 1) {
    for (int part = 0; part < setup.parts; ++part) setup.run(part);
    if (batch > 0) shard(0, batch);
    return;
  }
  // Shared with pool threads that may start after this call has returned; they read `shard` and
  // `setup` only after claiming a piece of work, which cannot happen once every piece is claimed.
  // The setup's pieces are claimed first, and the blocks start once all of them are done: the
  // thread woken for the other blocks helps with the setup instead of starting after it.
  struct Claims {
    Claims(int64_t batch, int64_t shards, const std::function<void(int64_t, int64_t)>* shard,
           const SharedSetup* setup)
        : batch(batch),
          shards(shards),
          rows_per_shard((batch + shards - 1) / shards),
          shard(shard),
          setup(setup),
          setup_parts(setup->parts) {}
    const int64_t batch, shards, rows_per_shard;
    const std::function<void(int64_t, int64_t)>* const shard;
    const SharedSetup* const setup;
    const int setup_parts;
    std::atomic<int64_t> next{0}, done{0};
    std::atomic<int> next_setup{0}, setup_done{0};

    void Run() {
      for (int part = next_setup.fetch_add(1); part < setup_parts; part = next_setup.fetch_add(1)) {
        setup->run(part);
        setup_done.fetch_add(1, std::memory_order_acq_rel);
      }
      // The pieces still running are another thread's (microseconds).
      for (int spins = 0; setup_done.load(std::memory_order_acquire) < setup_parts; ++spins) {
        if (spins > 1000) std::this_thread::yield();
      }
      for (int64_t s = next.fetch_add(1); s < shards; s = next.fetch_add(1)) {
        const int64_t first = s * rows_per_shard;
        const int64_t end = std::min(batch, first + rows_per_shard);
        if (first < end) (*shard)(first, end);
        done.fetch_add(1, std::memory_order_acq_rel);
      }
    }
  };
  const auto claims = std::make_shared<Claims>(batch, shards, &shard, &setup);
  for (int64_t s = 1; s < shards; ++s) workers.Schedule([claims] { claims->Run(); });
  claims->Run();
  // The blocks still running are another thread's: wait for them (milliseconds at most).
  for (int spins = 0; claims->done.load(std::memory_order_acquire) < shards; ++spins) {
    if (spins > 1000) std::this_thread::yield();
  }
}

// Runs `task(step, part)` for every step in [0, steps) and part in [0, parts): the parts of a
// step at once on `workers`, each step after every part of the one before. For sequences split by
// units, the parts are ranges of units. Each thread does its own part of a step first, so that a
// part's weights stay in one core's cache, then any part still unclaimed: the calling thread goes
// on alone while a pool thread is slow to wake, and the others join when they start. Returns
// when every task has run, without waiting for pool threads that have not started yet: those
// find every part claimed and leave. Waiting never deadlocks.
inline void ForEachStepInParts(const Workers& workers, int64_t steps, int parts,
                               const std::function<void(int64_t, int)>& task) {
  // Shared with pool threads that may start after this call has returned; they read `task`
  // only after claiming a part, which cannot happen once every part is claimed.
  struct Progress {
    Progress(int64_t steps, int parts, const std::function<void(int64_t, int)>* task)
        : steps(steps), parts(parts), task(task), next_step(parts) {
      for (auto& next : next_step) next.store(0, std::memory_order_relaxed);
    }
    const int64_t steps;
    const int parts;
    const std::function<void(int64_t, int)>* const task;
    // next_step[part]: the first step whose `part` nobody has claimed.
    std::vector<std::atomic<int64_t>> next_step;
    std::atomic<int64_t> finished{0};

    void Run(int own) {
      for (int64_t step = 0; step < steps; ++step) {
        for (int i = 0; i < parts; ++i) {
          const int part = (own + i) % parts;
          int64_t expected = step;
          if (!next_step[part].compare_exchange_strong(expected, step + 1,
                                                       std::memory_order_acq_rel)) {
            continue;
          }
          // Spin (a step takes microseconds), but give way if the thread being waited for is
          // descheduled.
          for (int spins = 0; finished.load(std::memory_order_acquire) < step * parts; ++spins) {
            if (spins > 1000) std::this_thread::yield();
          }
          (*task)(step, part);
          finished.fetch_add(1, std::memory_order_acq_rel);
        }
      }
    }
  };
  const auto progress = std::make_shared<Progress>(steps, parts, &task);
  const int helpers = std::min(workers.NumThreads(), parts) - 1;
  for (int own = 1; own <= helpers; ++own) {
    workers.Schedule([progress, own] { progress->Run(own); });
  }
  progress->Run(0);
  for (int spins = 0; progress->finished.load(std::memory_order_acquire) < steps * parts; ++spins) {
    if (spins > 1000) std::this_thread::yield();
  }
}

}  // namespace rnn
}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_WORKERS_H_
