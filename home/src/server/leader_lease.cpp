// LeaderLease: takes and renews a lease in the store, and says whether this home leads.

#include "server/leader_lease.hpp"

#include <unistd.h>

#include <fmt/format.h>
#include <boost/asio/ip/host_name.hpp>

#include "pass/bytes.hpp"
#include "pass/crypto.hpp"
#include "pass/home/log.hpp"

namespace pass::home {

std::string homeHolderId() {
  boost::system::error_code ignored;
  return fmt::format("{}:{}:{}", boost::asio::ip::host_name(ignored), ::getpid(),
                     toHex(randomBytes(4)));
}

LeaderLease::LeaderLease(StoreLocation where, std::string name, std::string holder, Logger& log,
                         std::function<void()> tookOver, LeaseTiming timing)
    : where_(std::move(where)),
      name_(std::move(name)),
      holder_(std::move(holder)),
      log_(log),
      tookOver_(std::move(tookOver)),
      timing_(timing) {}

LeaderLease::~LeaderLease() { stop(); }

Status LeaderLease::start() {
  auto store = ClusterStore::open(where_);
  if (!store) return std::unexpected(store.error());
  store_ = std::make_unique<ClusterStore>(std::move(*store));
  attempt();
  thread_ = std::thread([this] { run(); });
  return {};
}

void LeaderLease::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    leadingUntil_ = {};
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  // Released even when this home no longer leads: the row may still name it.
  if (store_) {
    if (auto released = store_->releaseLease(name_, holder_); !released) {
      log_.warning("lease_release_failed",
                   {{"lease", name_}, {"message", released.error().message}});
    } else if (led_) {
      log_.info("lease_released", {{"lease", name_}, {"holder", holder_}});
    }
    led_ = false;
  }
}

bool LeaderLease::leading() const {
  std::lock_guard lock(mutex_);
  return Clock::now() < leadingUntil_;
}

void LeaderLease::attempt() {
  if (!store_) {
    // The server dropped the last connection (a restart, a fail-over): connect again.
    auto store = ClusterStore::open(where_);
    if (store) store_ = std::make_unique<ClusterStore>(std::move(*store));
  }
  const auto sent = Clock::now();
  auto held = store_ ? store_->takeLease(name_, holder_, timing_.length.count())
                     : Result<bool>(std::unexpected(
                           Error{"store.unavailable", "no connection to the database"}));
  if (!held) {
    // Leading ends on its own when leadingUntil_ passes: the work stops before the lease
    // could have expired, and another home may take it.
    if (!failing_) {
      log_.error("lease_error", {{"lease", name_}, {"message", held.error().message}});
    }
    failing_ = true;
    if (held.error().code == "store.unavailable") store_.reset();
  } else {
    failing_ = false;
    std::lock_guard lock(mutex_);
    if (!*held) {
      leadingUntil_ = {};
    } else if (!stopping_) {
      leadingUntil_ = sent + timing_.length - timing_.margin;
    }
  }
  const bool leads = leading();
  if (leads && !led_) {
    log_.info("lease_taken", {{"lease", name_}, {"holder", holder_}});
    if (tookOver_) tookOver_();
  } else if (!leads && led_) {
    log_.warning("lease_lost",
                 {{"lease", name_},
                  {"holder", holder_},
                  {"reason", failing_ ? "it could not be renewed in time (the database failed)"
                                      : "another home holds it"}});
  }
  led_ = leads;
}

void LeaderLease::run() {
  while (true) {
    {
      std::unique_lock lock(mutex_);
      if (cv_.wait_for(lock, timing_.renewEvery, [this] { return stopping_; })) return;
    }
    attempt();
  }
}

}  // namespace pass::home
