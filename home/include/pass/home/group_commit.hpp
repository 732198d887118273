#pragma once
/// Group commit: one writer thread owns the write connection and stores every queued
/// envelope of concurrent requests in one transaction, so that one fsync serves many
/// acknowledgements.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "pass/home/store.hpp"
#include "pass/result.hpp"

namespace pass::home {

class Logger;

struct CommitJob {
  EnvelopeRecord record;
  /// Called on the writer thread after COMMIT returned (or failed); must not block — post the
  /// work to the connection's executor.
  std::function<void(Result<CommitResult>)> done;
};

class GroupCommitter {
 public:
  /// Takes over `writer` and starts the writer thread. While envelopes arrive concurrently
  /// (the previous batch held more than one), a batch waits up to `linger` after its first job
  /// for more to join: fewer, larger commits leave more CPU for the requests. The wait grows
  /// with the previous batch (full from five on); a lone agent's envelopes never wait.
  /// `enqueued` is called on the writer thread after a commit that queued notifications.
  GroupCommitter(Store writer, std::size_t maxBatch, Logger& log,
                 std::chrono::microseconds linger = std::chrono::microseconds(0),
                 std::function<void()> enqueued = {});
  /// Stops and joins (see stop()).
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  /// Queues a job; thread-safe. After stop() the job completes at once with "stopping".
  void submit(CommitJob job);
  /// Commits what is queued, then ends the writer thread. Idempotent.
  void stop();

  std::uint64_t batches() const { return batches_.load(std::memory_order_relaxed); }
  std::uint64_t jobs() const { return jobs_.load(std::memory_order_relaxed); }

 private:
  void run();

  Store store_;
  std::size_t maxBatch_;
  Logger& log_;
  std::chrono::microseconds linger_;
  std::function<void()> enqueued_;
  std::chrono::steady_clock::time_point firstQueued_;
  std::size_t lastBatch_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<CommitJob> queue_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> jobs_{0};
  std::thread thread_;
};

}  // namespace pass::home
