#include "pass/home/group_commit.hpp"

#include <algorithm>
#include <iterator>

#include "pass/home/log.hpp"

namespace pass::home {

GroupCommitter::GroupCommitter(Store writer, std::size_t maxBatch, Logger& log)
    : store_(std::move(writer)), maxBatch_(std::max<std::size_t>(1, maxBatch)), log_(log) {
  thread_ = std::thread([this] { run(); });
}

GroupCommitter::~GroupCommitter() { stop(); }

void GroupCommitter::submit(CommitJob job) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back(std::move(job));
      wake_.notify_one();
      return;
    }
  }
  job.done(fail("stopping", "the home is shutting down"));
}

void GroupCommitter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void GroupCommitter::run() {
  std::vector<CommitJob> batch;
  std::vector<const EnvelopeRecord*> records;
  while (true) {
    batch.clear();
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      // Whatever queued up while the previous COMMIT was syncing goes into this one.
      if (queue_.size() <= maxBatch_) {
        batch.swap(queue_);
      } else {
        auto n = static_cast<std::ptrdiff_t>(maxBatch_);
        std::move(queue_.begin(), queue_.begin() + n, std::back_inserter(batch));
        queue_.erase(queue_.begin(), queue_.begin() + n);
      }
    }
    records.clear();
    for (const auto& job : batch) records.push_back(&job.record);
    auto results = store_.commit(records);
    batches_.fetch_add(1, std::memory_order_relaxed);
    jobs_.fetch_add(batch.size(), std::memory_order_relaxed);
    if (!results) {
      log_.error("store_error", {{"message", results.error().message},
                                 {"batch", batch.size()}});
      for (auto& job : batch) job.done(std::unexpected(results.error()));
      continue;
    }
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done((*results)[i]);
  }
}

}  // namespace pass::home
