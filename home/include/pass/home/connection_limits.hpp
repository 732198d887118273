#pragma once
/// What keeps connections that have not yet shown a certificate from crowding out the agents
/// (docs/home.md, "Connections without a certificate"): slots for TLS handshakes in progress,
/// in total and per source address, apart from the agents' connection slots, and a tally of
/// refused connections that is logged as one summary line per interval.

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include <boost/asio/ip/address.hpp>
#include <nlohmann/json.hpp>

namespace pass::home {

/// The source a connection is counted under: an IPv4 address as it is (also when it arrives
/// IPv4-mapped on an IPv6 socket), an IPv6 address by its /64 prefix ("2001:db8:1:2::/64"),
/// since one machine usually holds a whole /64.
std::string addressKey(const boost::asio::ip::address& address);

/// Slots of TLS handshakes in progress, at most `total` of them and `perAddress` per source
/// address. When all are taken, a connection from an address holding fewer slots than the
/// address holding most takes the oldest slot of that one (of several such addresses, the
/// oldest slot among them): many connections from a few addresses cannot keep a new address
/// out. Not thread-safe: the caller holds a lock.
class HandshakeSlots {
 public:
  using Id = std::uint64_t;

  enum class Outcome {
    kAdmitted,
    kAddressFull,  // the address holds `perAddress` slots already
    kFull,         // all slots taken, and no address holds more than this one
  };

  struct Eviction {
    Id id = 0;
    std::string key;
  };

  struct Admission {
    Outcome outcome = Outcome::kAdmitted;
    /// When admitted by taking another connection's slot: that connection, to be closed.
    std::optional<Eviction> evicted;
  };

  HandshakeSlots(std::size_t total, std::size_t perAddress);

  /// Takes a slot for connection `id` from `key`. Ids must increase from call to call: the
  /// smallest id of an address is its oldest handshake.
  Admission admit(Id id, const std::string& key);
  /// Frees the slot of `id`; nothing when it holds none (finished or evicted before).
  void release(Id id);

  std::size_t size() const { return keyOf_.size(); }
  std::size_t count(const std::string& key) const;

 private:
  std::size_t total_;
  std::size_t perAddress_;
  std::unordered_map<std::string, std::set<Id>> byKey_;
  std::unordered_map<Id, std::string> keyOf_;
};

/// Why the home closed a connection it had accepted.
enum class ConnectionRefusal {
  kConnectionLimit,   // --max-connections agents' connections are open
  kHandshakeLimit,    // --max-handshakes handshakes in progress, none to take over
  kAddressLimit,      // --max-handshakes-per-address from this address
  kEvicted,           // its handshake slot went to a connection from a less busy address
  kHandshakeTimeout,  // no complete handshake within --handshake-timeout
};
constexpr std::size_t kConnectionRefusals = 5;

/// The name of a refusal in the summary line: "connection_limit", "handshake_limit",
/// "address_limit", "evicted", "handshake_timeout".
std::string_view toString(ConnectionRefusal reason);

/// Counts refused connections between summary lines. Thread-safe.
///
/// The first refusal after a quiet interval is logged at once; later ones are counted and
/// logged together when the interval ends, so an attacker cannot make more than one line per
/// interval, whatever the number of connections.
class RefusalTally {
 public:
  /// The most addresses counted one by one within an interval; refusals from further addresses
  /// are counted only in the totals (an attacker with many addresses cannot grow the tally).
  static constexpr std::size_t kMaxAddresses = 4096;
  /// Addresses named in a summary, those with most refusals first.
  static constexpr std::size_t kTopAddresses = 5;

  /// Counts one refusal of a connection from `key` (see addressKey). True when this one opens
  /// an interval: the caller logs take() at once, then at the end of each interval until
  /// take() finds nothing.
  bool add(ConnectionRefusal reason, const std::string& key);

  /// The counts since the last take as the summary line's fields, and resets them:
  /// {"refused":N,"connection_limit":N,...,"addresses":N,"top_addresses":[{"address":A,
  /// "refused":N},...]}. Nothing, and the interval closed, when nothing was counted.
  std::optional<nlohmann::ordered_json> take();

 private:
  std::mutex mutex_;
  bool open_ = false;
  std::array<std::uint64_t, kConnectionRefusals> counts_{};
  std::map<std::string, std::uint64_t> byAddress_;
  std::uint64_t otherAddresses_ = 0;
};

}  // namespace pass::home
