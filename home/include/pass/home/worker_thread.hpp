#pragma once
/// WorkerThread: the thread of a background loop (the outbox worker, the watchdog, retention)
/// that sleeps between rounds, can be woken early, and stops on request.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace pass::home {

class WorkerThread {
 public:
  WorkerThread() = default;
  ~WorkerThread() { stop(); }
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;

  /// Runs `loop` on the thread; it calls sleep() between rounds and returns when that says so.
  void start(std::function<void()> loop) { thread_ = std::thread(std::move(loop)); }

  /// Thread-safe: the sleep in progress, or the next one, ends at once.
  void wake() {
    {
      std::lock_guard lock(mutex_);
      woken_ = true;
    }
    cv_.notify_one();
  }

  /// Ends the sleep in progress and joins once the loop returns. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  bool stopping() {
    std::lock_guard lock(mutex_);
    return stopping_;
  }

  /// Sleeps for `period` or until woken or stopped. False: stop, the loop returns.
  bool sleep(std::chrono::milliseconds period) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, period, [this] { return stopping_ || woken_; });
    woken_ = false;
    return !stopping_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool woken_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace pass::home
