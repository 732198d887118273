// The revoked agents, read from the store by the running server every 250 ms.

#include "pass/home/revoked_agents.hpp"

namespace pass::home {

RevokedAgents::RevokedAgents(StoreLocation database) : database_(std::move(database)) {}

Result<std::vector<std::string>> RevokedAgents::refresh() {
  if (!store_) {
    auto opened = Store::open(database_, Store::Mode::kOpenExisting);
    if (!opened) return std::unexpected(opened.error());
    store_.emplace(std::move(*opened));
  }
  auto ids = store_->revokedAgents();
  if (!ids) {
    store_.reset();  // a connection that failed is opened again next time
    return std::unexpected(ids.error());
  }
  std::vector<std::string> added;
  std::unordered_set<std::string> now(ids->begin(), ids->end());
  std::lock_guard lock(mutex_);
  for (auto& id : *ids) {
    if (!revoked_.contains(id)) added.push_back(id);
  }
  revoked_ = std::move(now);
  return added;
}

bool RevokedAgents::contains(const std::string& agentId) const {
  std::lock_guard lock(mutex_);
  return revoked_.contains(agentId);
}

}  // namespace pass::home
