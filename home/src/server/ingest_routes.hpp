#pragma once
// The ingest API's route table (docs/protocol.md): POST /v1/envelopes, answered after group
// commit, and POST /v1/certificate (renewal), with the answers and `refused` lines of every
// refusal.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "pass/home/https_listener.hpp"
#include "pass/result.hpp"

namespace pass::home {

class CertificateRenewals;
class GroupCommitter;
class Ingest;
class Logger;
struct RefusalContext;

class IngestRoutes {
 public:
  IngestRoutes(Ingest& ingest, GroupCommitter& committer, CertificateRenewals& renewals,
               Logger& log);

  RouteTable table();

  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> storeErrors{0};

 private:
  void envelope(HttpRequest& request, HttpPeer& peer, Respond respond);
  void certificate(HttpRequest& request, HttpPeer& peer, Respond respond);
  HttpAnswer refuseRoute(const RouteRefusal& refusal, const HttpPeer& peer);
  HttpAnswer refuse(unsigned status, const std::string& code, const std::string& detail,
                    const RefusalContext& context, const HttpPeer& peer);
  HttpAnswer storeFailed(const Error& error);
  /// The answer to a check that refused the request (4xx) or could not reach the store (503);
  /// none when it passed.
  template <class Outcome>
  std::optional<HttpAnswer> failed(const Outcome& result, const RefusalContext& context,
                                   const HttpPeer& peer);

  Ingest& ingest_;
  GroupCommitter& committer_;
  CertificateRenewals& renewals_;
  Logger& log_;
};

}  // namespace pass::home
