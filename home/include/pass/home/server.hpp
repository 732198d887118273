#pragma once
/// The options of the HTTPS ingest listener (mutual TLS, POST /v1/envelopes answered after
/// group commit, POST /v1/certificate; body limit, read and idle timeouts, a connection limit
/// for agents, separate limits and a deadline for handshakes in progress) and its counters.
/// home::Runtime (runtime.hpp) runs it.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "pass/home/ingest.hpp"
#include "pass/home/renewal.hpp"
#include "pass/home/tickets.hpp"
#include "pass/result.hpp"

namespace pass::home {

struct ServerOptions {
  std::filesystem::path state;
  std::string host = "0.0.0.0";
  std::uint16_t port = 9455;  // 0 = ephemeral
  /// Written atomically with the bound port once listening (tests poll for it).
  std::filesystem::path portFile;
  unsigned threads = 2;
  std::size_t maxBody = 1024 * 1024;
  /// Budget for one request's header and body, and for an answer.
  std::chrono::milliseconds readTimeout{std::chrono::seconds(30)};
  /// Budget for a new connection's TLS handshake, from accept to the verified certificate.
  std::chrono::milliseconds handshakeTimeout{std::chrono::seconds(5)};
  /// Connections still in their TLS handshake, in total and per source address (an IPv6
  /// address counts by its /64). They hold none of the maxConnections slots, which belong to
  /// connections that showed an agent's certificate (docs/home.md).
  std::size_t maxHandshakes = 256;
  std::size_t maxHandshakesPerAddress = 64;
  /// Connections refused for a limit or the handshake deadline are logged as one
  /// `connections_refused` line per interval at most.
  std::chrono::milliseconds refusalLogInterval{std::chrono::seconds(10)};
  /// How long a keep-alive connection may wait for its next request.
  std::chrono::milliseconds idleTimeout{std::chrono::seconds(60)};
  std::size_t maxConnections = 512;
  std::size_t maxBatch = 1024;
  /// How long a commit may wait for more envelopes while several arrive at once (see
  /// GroupCommitter); 0 commits at once. 3 ms measured best with 32 agents on 2 cores.
  std::chrono::microseconds commitLinger{3000};
  std::chrono::milliseconds statsInterval{std::chrono::seconds(60)};
  /// After a stop request, how long open connections may take to finish.
  std::chrono::milliseconds drainTimeout{std::chrono::seconds(10)};
  WindowOptions window;
  /// How long a certificate replaced by a renewal is still accepted (POST /v1/certificate).
  std::int64_t certificateGraceMs = kCertificateGraceMs;
  /// home.xml and what it needs; null: no tickets, no notifications (benchmarks of ingest
  /// alone, tests of the pipeline).
  std::shared_ptr<const Policy> policy;
};

/// Parses "HOST:PORT" ("[::1]:9455" for IPv6) into options; fails with "usage.listen".
Status parseListen(std::string_view text, ServerOptions& options);

struct ServerStats {
  std::uint64_t accepted = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t refused = 0;
  std::uint64_t storeErrors = 0;
  std::uint64_t openConnections = 0;
  std::uint64_t rejectedConnections = 0;
  std::uint64_t handshaking = 0;
  std::uint64_t batches = 0;
};

}  // namespace pass::home
