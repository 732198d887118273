#pragma once
/// The JSON admin API and the acknowledgement link (docs/admin-api.md): a second listener,
/// loopback and plain HTTP by default, TLS with the home's server certificate on any other
/// address. Every /v1/ endpoint but the acknowledgement link needs the bearer token of
/// STATE/admin.token. The requests run the same functions as `pass-home tickets`, `silence`
/// and `notify-test` (ticket_admin.hpp).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "pass/home/https_listener.hpp"
#include "pass/home/outbox_worker.hpp"
#include "pass/home/tickets.hpp"
#include "pass/result.hpp"

namespace pass::home {

class Logger;

inline constexpr std::string_view kDefaultAdminListen = "127.0.0.1:9456";

struct AdminApiOptions {
  std::filesystem::path state;
  std::string host = "127.0.0.1";
  std::uint16_t port = 9456;  // 0 = ephemeral
  /// Written atomically with the bound port once listening (tests poll for it).
  std::filesystem::path portFile;
  /// Budget for a TLS handshake, one request, or one answer; also the keep-alive idle time.
  std::chrono::milliseconds readTimeout{std::chrono::seconds(30)};
  std::size_t maxBody = 64 * 1024;
  std::size_t maxConnections = 64;
  /// Signs and checks the acknowledgement links; null: loaded from the state directory.
  std::shared_ptr<const Policy> policy;
  NowMs now = wallClockMs;
};

/// Parses "HOST:PORT" ("[::1]:9456" for IPv6); fails with "usage.admin_listen".
Status parseAdminListen(std::string_view text, AdminApiOptions& options);

/// True for 127.0.0.0/8 and ::1: the addresses served without TLS.
bool isLoopbackHost(std::string_view host);

/// Reads STATE/admin.token (64 hex digits), creating it (32 random bytes, mode 0600) the first
/// time. Fails with "admin_token" when the file holds something else.
Result<std::string> loadAdminToken(const std::filesystem::path& state);

/// The admin API's listener: an HttpsListener of one thread of its own, so that it neither
/// slows ingest nor depends on it, with the admin route table (one function per method and
/// path). Requests run one at a time on that thread (they are short store transactions;
/// notify-test waits for the channel's answer). Loads the token (and the policy when not
/// given), sets up TLS for a non-loopback address, binds; start() serves. Fails with
/// "usage.admin_listen", "admin_token", "tls" or "listen".
Result<std::unique_ptr<HttpsListener>> createAdminListener(const AdminApiOptions& options,
                                                           Logger& log);

}  // namespace pass::home
