// Handshake slots per source address and the bounded summary of refused connections.

#include "pass/home/connection_limits.hpp"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

namespace pass::home {

std::string addressKey(const boost::asio::ip::address& address) {
  if (address.is_v4()) return address.to_string();
  auto v6 = address.to_v6();
  if (v6.is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string();
  }
  auto bytes = v6.to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return fmt::format("{}/64", boost::asio::ip::address_v6(bytes).to_string());
}

HandshakeSlots::HandshakeSlots(std::size_t total, std::size_t perAddress)
    : total_(total), perAddress_(perAddress) {}

HandshakeSlots::Admission HandshakeSlots::admit(Id id, const std::string& key) {
  auto mine = count(key);
  if (mine >= perAddress_) return {Outcome::kAddressFull, std::nullopt};
  Admission admission;
  if (keyOf_.size() >= total_) {
    // The busiest address; of several, the one with the oldest handshake. Linear in the number
    // of addresses holding slots, at most `total_`, and only when full.
    auto busiest = std::max_element(byKey_.begin(), byKey_.end(), [](auto& a, auto& b) {
      if (a.second.size() != b.second.size()) return a.second.size() < b.second.size();
      return *a.second.begin() > *b.second.begin();
    });
    if (busiest == byKey_.end() || busiest->second.size() <= mine) return {Outcome::kFull, {}};
    auto oldest = *busiest->second.begin();
    admission.evicted = Eviction{oldest, busiest->first};
    release(oldest);
  }
  byKey_[key].insert(id);
  keyOf_.emplace(id, key);
  return admission;
}

void HandshakeSlots::release(Id id) {
  auto found = keyOf_.find(id);
  if (found == keyOf_.end()) return;
  auto ids = byKey_.find(found->second);
  ids->second.erase(id);
  if (ids->second.empty()) byKey_.erase(ids);
  keyOf_.erase(found);
}

std::size_t HandshakeSlots::count(const std::string& key) const {
  auto found = byKey_.find(key);
  return found == byKey_.end() ? 0 : found->second.size();
}

std::string_view toString(ConnectionRefusal reason) {
  switch (reason) {
    case ConnectionRefusal::kConnectionLimit:
      return "connection_limit";
    case ConnectionRefusal::kHandshakeLimit:
      return "handshake_limit";
    case ConnectionRefusal::kAddressLimit:
      return "address_limit";
    case ConnectionRefusal::kEvicted:
      return "evicted";
    case ConnectionRefusal::kHandshakeTimeout:
      return "handshake_timeout";
  }
  return "unknown";
}

bool RefusalTally::add(ConnectionRefusal reason, const std::string& key) {
  std::lock_guard lock(mutex_);
  ++counts_[static_cast<std::size_t>(reason)];
  auto found = byAddress_.find(key);
  if (found != byAddress_.end()) {
    ++found->second;
  } else if (byAddress_.size() < kMaxAddresses) {
    byAddress_.emplace(key, 1);
  } else {
    ++otherAddresses_;
  }
  return !std::exchange(open_, true);
}

std::optional<nlohmann::ordered_json> RefusalTally::take() {
  std::lock_guard lock(mutex_);
  std::uint64_t refused = 0;
  for (auto n : counts_) refused += n;
  if (refused == 0) {
    open_ = false;
    return std::nullopt;
  }
  nlohmann::ordered_json summary;
  summary["refused"] = refused;
  for (std::size_t i = 0; i < kConnectionRefusals; ++i) {
    summary[std::string(toString(static_cast<ConnectionRefusal>(i)))] = counts_[i];
  }
  summary["addresses"] = byAddress_.size();
  if (otherAddresses_ > 0) summary["refused_from_uncounted_addresses"] = otherAddresses_;
  std::vector<std::pair<std::string, std::uint64_t>> top(byAddress_.begin(), byAddress_.end());
  auto shown = std::min(top.size(), kTopAddresses);
  std::partial_sort(top.begin(), top.begin() + static_cast<std::ptrdiff_t>(shown), top.end(),
                    [](auto& a, auto& b) {
                      return a.second != b.second ? a.second > b.second : a.first < b.first;
                    });
  auto& named = summary["top_addresses"] = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < shown; ++i) {
    named.push_back({{"address", top[i].first}, {"refused", top[i].second}});
  }
  counts_ = {};
  byAddress_.clear();
  otherAddresses_ = 0;
  return summary;
}

}  // namespace pass::home
