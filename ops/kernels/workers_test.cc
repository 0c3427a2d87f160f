// Tests of the thread hand-off (workers.h): every piece of work runs once, the setup before any
// block, the parts of a step after every part of the step before; and a runner that runs a task
// on the calling thread does not keep the work from being shared.
#include "workers.h"

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "sequence_test_util.h"
#include "test_harness.h"

namespace zoo {
namespace {

ZOO_TEST(BatchShardsCoverEveryRowOnceAfterTheSetup) {
  for (int threads : {1, 2, 4}) {
    const testing::TestWorkers workers(threads);
    for (int64_t batch : {0, 1, 3, 64, 1001}) {
      testing::ScopedCase scope(std::to_string(threads) + " threads, batch " +
                                std::to_string(batch));
      std::vector<std::atomic<int>> runs(batch);
      std::atomic<int> setup_pieces{0}, blocks_before_setup{0}, blocks{0};
      constexpr int kPieces = 8;
      const rnn::SharedSetup setup{kPieces, [&](int) { setup_pieces.fetch_add(1); }};
      rnn::ForEachBatchShard(
          workers.get(), batch, 1000000,
          [&](int64_t first, int64_t end) {
            if (setup_pieces.load() != kPieces) blocks_before_setup.fetch_add(1);
            blocks.fetch_add(1);
            for (int64_t r = first; r < end; ++r) runs[r].fetch_add(1);
          },
          setup);
      EXPECT_EQ(setup_pieces.load(), kPieces);
      EXPECT_EQ(blocks_before_setup.load(), 0);
      EXPECT_TRUE(blocks.load() <= std::max(threads, 1));
      for (int64_t r = 0; r < batch; ++r) EXPECT_EQ(runs[r].load(), 1);
    }
  }
}

ZOO_TEST(StepPartsRunInStepOrder) {
  for (int threads : {1, 2, 3}) {
    const testing::TestWorkers workers(threads);
    for (int parts : {1, 2, 3}) {
      testing::ScopedCase scope(std::to_string(threads) + " threads, " + std::to_string(parts) +
                                " parts");
      constexpr int64_t kSteps = 200;
      std::mutex lock;
      std::vector<int64_t> order;  // step of each task, in the order they finished
      rnn::ForEachStepInParts(workers.get(), kSteps, parts, [&](int64_t step, int) {
        std::lock_guard<std::mutex> guard(lock);
        order.push_back(step);
      });
      EXPECT_EQ(static_cast<int64_t>(order.size()), kSteps * parts);
      EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
    }
  }
}

// Eager execution's runner runs a closure at once on the calling thread: the task must still go
// to another thread, not run inside Schedule.
ZOO_TEST(ARunnerThatRunsInlineStillSharesTheWork) {
  Eigen::ThreadPool pool(2);
  Eigen::ThreadPoolDevice device(&pool, 2);
  rnn::Workers::Runner inline_runner = [](std::function<void()> closure) { closure(); };
  const rnn::Workers workers(device, &inline_runner);
  std::atomic<bool> ran{false};
  std::thread::id runner_thread;
  std::mutex lock;
  workers.Schedule([&] {
    std::lock_guard<std::mutex> guard(lock);
    runner_thread = std::this_thread::get_id();
    ran.store(true);
  });
  while (!ran.load()) std::this_thread::yield();
  std::lock_guard<std::mutex> guard(lock);
  EXPECT_TRUE(runner_thread != std::this_thread::get_id());
}

}  // namespace
}  // namespace zoo

ZOO_TEST_MAIN()
