// Group commit: one writer thread stores concurrent envelopes in one transaction.

#include "pass/home/group_commit.hpp"

#include <algorithm>
#include <iterator>

#include "pass/home/log.hpp"

namespace pass::home {
namespace {

// The previous batch size from which a batch waits the whole linger time.
constexpr std::size_t kFullLingerBatch = 5;

}  // namespace

GroupCommitter::GroupCommitter(Store writer, std::size_t maxBatch, Logger& log,
                               std::chrono::microseconds linger, std::function<void()> enqueued)
    : store_(std::move(writer)),
      maxBatch_(std::max<std::size_t>(1, maxBatch)),
      log_(log),
      linger_(linger),
      enqueued_(std::move(enqueued)) {
  store_.setLogger(log_);
  thread_ = std::thread([this] { run(); });
}

GroupCommitter::~GroupCommitter() { stop(); }

void GroupCommitter::submit(CommitJob job) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back(std::move(job));
      // Only the first job and a full batch change what the writer waits for; waking it for
      // every job would cost a futex call per request.
      if (queue_.size() == 1) firstQueued_ = std::chrono::steady_clock::now();
      if (queue_.size() == 1 || queue_.size() == maxBatch_) wake_.notify_one();
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
      if (linger_.count() > 0 && lastBatch_ > 1) {
        // Two or three agents at once get a fraction of the wait; from five on, all of it.
        auto wait = linger_ * std::min<std::size_t>(lastBatch_ - 1, kFullLingerBatch - 1) /
                    (kFullLingerBatch - 1);
        wake_.wait_until(lock, firstQueued_ + wait,
                         [this] { return stopping_ || queue_.size() >= maxBatch_; });
      }
      // Whatever queued up while the previous COMMIT was syncing goes into this one.
      if (queue_.size() <= maxBatch_) {
        batch.swap(queue_);
      } else {
        auto n = static_cast<std::ptrdiff_t>(maxBatch_);
        std::move(queue_.begin(), queue_.begin() + n, std::back_inserter(batch));
        queue_.erase(queue_.begin(), queue_.begin() + n);
      }
    }
    lastBatch_ = batch.size();
    records.clear();
    for (const auto& job : batch) records.push_back(&job.record);
    auto results = store_.commit(records);
    batches_.fetch_add(1, std::memory_order_relaxed);
    jobs_.fetch_add(batch.size(), std::memory_order_relaxed);
    if (!results) {
      log_.error("store_error", {{"message", results.error().message}, {"batch", batch.size()}});
      for (auto& job : batch) job.done(std::unexpected(results.error()));
      continue;
    }
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done((*results)[i]);
    if (store_.takeEnqueued() > 0 && enqueued_) enqueued_();
  }
}

}  // namespace pass::home
