#pragma once
/// `pass-home serve` as one object that owns every long-running part: the ingest listener
/// (HttpsListener with the ingest route table), the group committer, the HPKE key ring, the
/// revoked-agents poll, the admin API, the outbox worker and the watchdog; built from one
/// options struct, started, run and stopped in one order (docs/architecture.md, "Start-up and
/// shutdown").

#include <memory>
#include <optional>

#include "pass/home/admin_api.hpp"
#include "pass/home/server.hpp"
#include "pass/result.hpp"

namespace pass::home {

class Logger;

struct RuntimeOptions {
  /// The ingest listener. Its `state` is the home's; `policy`, when not given, is loaded by
  /// Runtime::create when `tickets` is set. With a policy there are tickets, notifications
  /// and the watchdog.
  ServerOptions ingest;
  /// The admin API; none: `--admin-listen off`. Its `state` and `policy` are the ingest's.
  std::optional<AdminApiOptions> admin;
  /// Load STATE/home.xml, open tickets, notify, run the watchdog; false stores envelopes only
  /// (`--no-tickets`, for measuring ingest alone).
  bool tickets = true;
};

class Runtime {
 public:
  /// Loads home.xml, builds every part and binds both listeners; nothing runs yet. A failure
  /// is logged as `startup_failed` and returned ("config", "not_initialized", "tls", "listen",
  /// "store", "admin_token", ...).
  static Result<std::unique_ptr<Runtime>> create(RuntimeOptions options, Logger& log);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  std::uint16_t ingestPort() const;
  /// 0 without an admin API.
  std::uint16_t adminPort() const;

  /// Starts the admin API, the outbox worker and the watchdog, then serves ingest until stop()
  /// or, when `handleSignals`, SIGINT/SIGTERM; then stops everything in reverse order.
  Status run(bool handleSignals);
  /// Thread-safe; may be called before or during run().
  void stop();

  ServerStats stats() const;

 private:
  struct Parts;
  explicit Runtime(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace pass::home
