// The ingest API's route table over the HTTPS listener: envelopes and certificate renewals.

#include "server/ingest_routes.hpp"

#include <ctime>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/crypto.hpp"
#include "pass/envelope.hpp"
#include "pass/home/group_commit.hpp"
#include "pass/home/ingest.hpp"
#include "pass/home/log.hpp"
#include "pass/home/renewal.hpp"

namespace pass::home {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kEnvelopePath = "/v1/envelopes";
// Certificate renewal (docs/protocol.md): a DER PKCS#10 request in, the certificate out.
constexpr std::string_view kCertificatePath = "/v1/certificate";
constexpr std::string_view kCertificateRequestType = "application/pkcs10";
constexpr std::size_t kMaxCertificateRequest = 16 * 1024;

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// RFC 9110 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT": every answer carries the
/// home's clock, so that an agent whose envelopes are refused as `stale` or `future` can say
/// how far its own clock is off.
std::string httpDate(std::int64_t ms) {
  return fmt::format("{:%a, %d %b %Y %H:%M:%S} GMT",
                     fmt::gmtime(static_cast<std::time_t>(ms / 1000)));
}

HttpAnswer answer(unsigned status, std::string body) {
  HttpAnswer out{status, "application/json", std::move(body), {{"Date", httpDate(nowMs())}}};
  if (status == 405) out.headers.emplace_back("Allow", "POST");
  return out;
}

HttpAnswer answer(unsigned status, const Json& body) {
  return answer(status, body.dump(-1, ' ', false, Json::error_handler_t::replace));
}

}  // namespace

IngestRoutes::IngestRoutes(Ingest& ingest, GroupCommitter& committer, CertificateRenewals& renewals,
                           Logger& log)
    : ingest_(ingest), committer_(committer), renewals_(renewals), log_(log) {}

template <class Outcome>
std::optional<HttpAnswer> IngestRoutes::failed(const Outcome& result, const RefusalContext& context,
                                               const HttpPeer& peer) {
  if (auto* refusal = std::get_if<Refusal>(&result)) {
    return refuse(refusal->status, refusal->code, refusal->detail, context, peer);
  }
  if (auto* error = std::get_if<Error>(&result)) {
    log_.error("store_error", {{"agent", context.agent}, {"message", error->message}});
    return storeFailed(*error);
  }
  return std::nullopt;
}

RouteTable IngestRoutes::table() {
  RouteTable table;
  table.routes.push_back(
      Route{.method = "POST",
            .path = std::string(kEnvelopePath),
            .prefix = false,
            .mediaType = std::string(kEnvelopeContentType),
            .maxBody = 0,
            .handler = [this](HttpRequest& request, HttpPeer& peer, Respond respond) {
              envelope(request, peer, std::move(respond));
            }});
  table.routes.push_back(
      Route{.method = "POST",
            .path = std::string(kCertificatePath),
            .prefix = false,
            .mediaType = std::string(kCertificateRequestType),
            .maxBody = kMaxCertificateRequest,
            .handler = [this](HttpRequest& request, HttpPeer& peer, Respond respond) {
              certificate(request, peer, std::move(respond));
            }});
  table.refuse = [this](const RouteRefusal& refusal, const HttpPeer& peer) {
    return std::optional<HttpAnswer>(refuseRoute(refusal, peer));
  };
  return table;
}

HttpAnswer IngestRoutes::refuseRoute(const RouteRefusal& r, const HttpPeer& peer) {
  using Kind = RouteRefusal::Kind;
  switch (r.kind) {
    case Kind::kNotFound:
      return refuse(404, "not_found",
                    fmt::format("no such resource '{}'; envelopes go to POST {}, certificate "
                                "requests to POST {}",
                                r.target, kEnvelopePath, kCertificatePath),
                    {}, peer);
    case Kind::kMethodNotAllowed:
      return refuse(405, "method_not_allowed",
                    fmt::format("{} is not allowed on {}; use POST", r.method, r.target), {}, peer);
    case Kind::kUnsupportedMediaType:
      return refuse(415, "unsupported_media_type",
                    fmt::format("Content-Type '{}' is not {}", r.contentType, r.mediaType), {},
                    peer);
    case Kind::kTooLarge:
      return refuse(413, "too_large",
                    fmt::format("the request body is larger than the limit of {} bytes", r.limit),
                    {}, peer);
    case Kind::kMalformed:
      break;
  }
  return refuse(400, "bad_request", fmt::format("malformed HTTP request: {}", r.error), {}, peer);
}

void IngestRoutes::envelope(HttpRequest& request, HttpPeer& peer, Respond respond) {
  // The agent's row, checked once per connection.
  if (!peer.state.has_value()) peer.state = ConnectionAuth{};
  auto& auth = std::any_cast<ConnectionAuth&>(peer.state);
  auto outcome = ingest_.check(asBytes(request.body()), peer.identity, auth, nowMs());
  auto context = std::move(outcome.context);
  if (auto failure = failed(outcome.result, context, peer)) return respond(std::move(*failure));
  auto& checked = std::get<Checked>(outcome.result);
  if (checked.aheadMs) {
    log_.warning("clock_skew", {{"agent", context.agent},
                                {"seq", checked.record.seq},
                                {"ahead_ms", *checked.aheadMs},
                                {"peer", peer.address}});
  }
  Json logged;  // the fields of the debug line, when it is logged
  if (log_.enabled(LogLevel::kDebug)) {
    logged = Json{{"agent", context.agent},
                  {"seq", *context.seq},
                  {"type", checked.record.type},
                  {"events", checked.record.events.size()},
                  {"key_id", toHex(checked.sealedTo)},
                  {"peer", peer.address}};
  }
  // The agent id is formatUuid() output and the key hex, nothing to escape: no JSON object.
  std::string homeKey;
  if (checked.newHomeKey) {
    homeKey =
        fmt::format(R"(,"home_key":{{"key_id":"{}","public":"{}"}})", toHex(checked.newHomeKey->id),
                    toHex(checked.newHomeKey->key.rawPublic()));
  }
  std::string().swap(request.body());  // the record owns what is needed; free the body
  committer_.submit(CommitJob{
      std::move(checked.record),
      [this, respond = std::move(respond), agent = std::move(context.agent), seq = *context.seq,
       homeKey = std::move(homeKey), logged = std::move(logged)](Result<CommitResult> result) {
        if (!result) return respond(storeFailed(result.error()));
        bool duplicate = *result == CommitResult::kDuplicate;
        (duplicate ? duplicates : accepted).fetch_add(1, std::memory_order_relaxed);
        if (!logged.is_null()) log_.debug(duplicate ? "duplicate" : "accepted", logged);
        respond(
            answer(200, fmt::format(R"({{"status":"{}","agent":"{}","seq":{}{}}})",
                                    duplicate ? "duplicate" : "accepted", agent, seq, homeKey)));
      }});
}

// Rare (once per agent every few years) and quick: answered on the I/O thread.
void IngestRoutes::certificate(HttpRequest& request, HttpPeer& peer, Respond respond) {
  auto outcome = renewals_.renew(asBytes(request.body()), SSL_get0_peer_certificate(peer.ssl),
                                 peer.identity, nowMs());
  RefusalContext context{outcome.agent, std::nullopt};
  if (auto failure = failed(outcome.result, context, peer)) return respond(std::move(*failure));
  auto& issued = std::get<IssuedCertificate>(outcome.result);
  log_.info("certificate_renewed", {{"agent", context.agent},
                                    {"old_serial", peer.identity.serialHex},
                                    {"serial", issued.serialHex},
                                    {"not_after_ms", issued.notAfterMs},
                                    {"peer", peer.address}});
  respond(answer(200, Json{{"status", "issued"},
                           {"agent", context.agent},
                           {"serial", issued.serialHex},
                           {"not_after_ms", issued.notAfterMs},
                           {"certificate", issued.pem}}));
}

// 503: the agent keeps the envelope and retries. A failed batch is logged by the writer.
HttpAnswer IngestRoutes::storeFailed(const Error& error) {
  storeErrors.fetch_add(1, std::memory_order_relaxed);
  return answer(503, Json{{"error", error.code == "stopping" ? "stopping" : "store"},
                          {"detail", error.message + "; retry later"}});
}

HttpAnswer IngestRoutes::refuse(unsigned status, const std::string& code, const std::string& detail,
                                const RefusalContext& context, const HttpPeer& peer) {
  refused.fetch_add(1, std::memory_order_relaxed);
  Json fields = {{"agent", context.agent.empty() ? peer.identity.commonName : context.agent}};
  fields["seq"] = context.seq ? Json(*context.seq) : Json(nullptr);
  fields["code"] = code;
  fields["status"] = status;
  fields["detail"] = detail;
  fields["peer"] = peer.address;
  log_.warning("refused", fields);
  return answer(status, Json{{"error", code}, {"detail", detail}});
}

}  // namespace pass::home
