// The admin API: bearer tokens, acknowledgement links, and its route table over the HTTPS
// listener.

#include "pass/home/admin_api.hpp"

#include <charconv>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core.hpp>
#include <boost/url/parse.hpp>
#include <nlohmann/json.hpp>

#include "pass/bytes.hpp"
#include "pass/crypto.hpp"
#include "pass/home/https_listener.hpp"
#include "pass/home/log.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/state_store.hpp"
#include "pass/home/store.hpp"
#include "pass/home/ticket_admin.hpp"
#include "pass/iso_time.hpp"
#include "platform/fs.hpp"

// Boost.URL is not built as a library on this system; its sources compile into this one file.
#include <boost/url/src.hpp>

namespace pass::home {
namespace {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace urls = boost::urls;
using Json = nlohmann::ordered_json;

constexpr std::string_view kAckWho = "ack link";

std::string dumpJson(const Json& j) {
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

AdminResponse jsonAnswer(unsigned status, const Json& body) {
  return AdminResponse{status, "application/json", dumpJson(body)};
}

AdminResponse jsonError(unsigned status, std::string_view code, std::string_view detail) {
  return jsonAnswer(status, Json{{"error", code}, {"detail", detail}});
}

// Store and admin errors as HTTP: the caller's mistakes are 4xx, ours 5xx.
AdminResponse errorAnswer(const Error& error) {
  const auto& c = error.code;
  unsigned status = 500;
  if (c == "ticket.unknown" || c == "silence.unknown") status = 404;
  if (c == "ticket.state") status = 409;
  if (c.starts_with("usage") || c == "silence.invalid") status = 400;
  if (c == "notify.failed") status = 502;
  return jsonError(status, c, error.message);
}

AdminResponse methodNotAllowed(std::string_view allow) {
  auto answer = jsonError(405, "method", fmt::format("use {}", allow));
  answer.headers.emplace_back("Allow", std::string(allow));
  return answer;
}

std::optional<std::int64_t> parseId(std::string_view text) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v <= 0) return std::nullopt;
  return v;
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
  // The lengths are public (a token is always 64 or 32 hex digits); the contents are not.
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string htmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// `body` is HTML already escaped by the caller.
AdminResponse htmlPage(unsigned status, std::string_view heading, std::string_view body) {
  AdminResponse answer;
  answer.status = status;
  answer.contentType = "text/html; charset=utf-8";
  answer.body = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<meta name=\"robots\" content=\"noindex\"><title>PASS: {0}</title>"
      "<style>body{{font-family:sans-serif;max-width:36em;margin:2em auto;padding:0 1em}}"
      "button{{font-size:1.2em;padding:.5em 1.5em}}</style></head>\n"
      "<body><h1>{0}</h1>\n{1}</body></html>\n",
      htmlEscape(heading), body);
  // The token is in the URL: no caches, no Referer to other sites, no framing (a framed
  // button could be clicked by trickery).
  answer.headers = {{"Cache-Control", "no-store"},
                    {"Referrer-Policy", "no-referrer"},
                    {"X-Content-Type-Options", "nosniff"},
                    {"X-Frame-Options", "DENY"},
                    {"Content-Security-Policy",
                     "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                     "frame-ancestors 'none'"}};
  return answer;
}

AdminResponse invalidLink() {
  return htmlPage(404, "Link not valid",
                  "<p>This acknowledgement link is not valid. Use the link of the latest "
                  "message, or ask the on-call engineer.</p>\n");
}

/// "7 days", "1 day", "90 seconds": how long a link is valid.
std::string describeValidity(std::int64_t ms) {
  constexpr std::int64_t kDay = 86'400'000;
  if (ms % kDay == 0) return fmt::format("{} day{}", ms / kDay, ms == kDay ? "" : "s");
  return fmt::format("{} seconds", ms / 1000);
}

/// A genuine link used too late (410): when it expired, and where to acknowledge instead.
/// `expiredMs` is none for a link of the first format, which carries no issue time.
AdminResponse expiredLink(std::int64_t ticket, std::optional<std::int64_t> expiredMs,
                          std::int64_t validMs) {
  std::string when = expiredMs ? fmt::format("expired on {}", isoUtc(*expiredMs))
                               : std::string(
                                     "was made before links carried their issue time and counts as "
                                     "expired");
  return htmlPage(
      410, "Link expired",
      fmt::format("<p>This acknowledgement link of ticket #{} {}; links work for {} after their "
                  "message was written.</p>\n<p>Acknowledge the ticket with the link of a newer "
                  "message about it, or ask the on-call engineer to run <code>pass-home tickets "
                  "ack {}</code> on the home (or POST /v1/tickets/{}/ack in the admin "
                  "API).</p>\n",
                  ticket, when, describeValidity(validMs), ticket, ticket));
}

std::string ticketSummaryHtml(const TicketRow& t) {
  std::string out = fmt::format(
      "<p><strong>{}</strong></p>\n<p>{} / {}{}</p>\n", htmlEscape(t.title), htmlEscape(t.customer),
      htmlEscape(t.site), t.array.empty() ? std::string() : " / array " + htmlEscape(t.array));
  out += fmt::format("<p>State: <strong>{}</strong>", htmlEscape(t.state));
  if (t.state == "acknowledged" && t.ackedMs) {
    out +=
        fmt::format(" by {} at {}", htmlEscape(t.ackedBy), htmlEscape(formatTimestamp(*t.ackedMs)));
  }
  if (t.state == "resolved" && t.resolvedMs) {
    out += fmt::format(" by {} at {}", htmlEscape(t.resolvedBy),
                       htmlEscape(formatTimestamp(*t.resolvedMs)));
  }
  return out + "</p>\n";
}

// A JSON body's optional string member; nullopt when absent, an error when not a string.
Result<std::optional<std::string>> stringField(const Json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) return fail("usage.field", fmt::format("\"{}\" must be a string", key));
  return it->get<std::string>();
}

Result<std::string> requiredString(const Json& body, const char* key) {
  auto value = stringField(body, key);
  if (!value) return std::unexpected(value.error());
  if (!*value || (*value)->empty()) {
    return fail("usage.field", fmt::format("\"{}\" is required", key));
  }
  return **value;
}

// "from"/"until": a time as `silence add` takes it, or Unix milliseconds.
Result<std::int64_t> timeField(const Json& body, const char* key, std::string_view fallback,
                               std::int64_t nowMs) {
  auto it = body.find(key);
  if (it != body.end() && it->is_number_integer()) return it->get<std::int64_t>();
  auto text = stringField(body, key);
  if (!text) return std::unexpected(text.error());
  if (!*text && fallback.empty()) {
    return fail("usage.field", fmt::format("\"{}\" is required", key));
  }
  auto parsed = parseTime(*text ? std::string_view(**text) : fallback, nowMs);
  if (!parsed) {
    return fail(parsed.error().code, fmt::format("\"{}\": {}", key, parsed.error().message));
  }
  return parsed;
}

Result<Json> parseBody(std::string_view body) {
  Json parsed = Json::parse(body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return fail("usage.json", "the request body must be a JSON object");
  }
  return parsed;
}

struct Query {
  std::vector<std::pair<std::string, std::string>> params;
  std::optional<std::string> get(std::string_view key) const {
    for (const auto& [k, v] : params) {
      if (k == key) return v;
    }
    return std::nullopt;
  }
  bool flag(std::string_view key) const {
    auto v = get(key);
    return v && (*v == "1" || *v == "true" || *v == "yes");
  }
};

}  // namespace

Status parseAdminListen(std::string_view text, AdminApiOptions& options) {
  auto address = parseListenAddress(text, "--admin-listen", "usage.admin_listen",
                                    fmt::format("{} or [::1]:9456, or off", kDefaultAdminListen));
  if (!address) return std::unexpected(address.error());
  options.host = std::move(address->host);
  options.port = address->port;
  return {};
}

bool isLoopbackHost(std::string_view host) {
  beast::error_code ec;
  auto address = net::ip::make_address(std::string(host), ec);
  return !ec && address.is_loopback();
}

Result<std::string> loadAdminToken(const std::filesystem::path& state) {
  auto file = state / kAdminTokenFile;
  std::error_code ec;
  if (std::filesystem::exists(file, ec)) {
    auto text = platform::readFile(file);
    if (!text) return std::unexpected(text.error());
    std::string token = text->substr(0, text->find_first_of("\r\n"));
    auto bytes = fromHex(token);
    if (!bytes || bytes->size() != 32) {
      return fail("admin_token", fmt::format("{}: not 64 hex digits (delete it to get a new one)",
                                             platform::displayPath(file)));
    }
    return token;
  }
  std::string token = toHex(randomBytes(32));
  if (auto done = platform::writeFileAtomic(file, token + "\n", /*privateFile=*/true); !done) {
    return std::unexpected(done.error());
  }
  return token;
}

AdminHandler::AdminHandler(std::filesystem::path state, std::string token,
                           std::shared_ptr<const Policy> policy, NowMs now)
    : state_(std::move(state)),
      token_(std::move(token)),
      policy_(std::move(policy)),
      now_(std::move(now)) {}

AdminResponse AdminHandler::handle(const AdminRequest& r) const {
  auto url = urls::parse_origin_form(r.target);
  if (!url) return jsonError(400, "usage.target", "the request target is not a path");
  std::vector<std::string> seg;
  for (auto s : url->segments()) seg.push_back(std::string(s));
  Query query;
  for (auto p : url->params()) query.params.emplace_back(p.key, p.value);
  const auto& m = r.method;

  // The acknowledgement link carries its own credential: the token in the path.
  // /v1/ack/<ticket>/<issued seconds>/<token>; the first format had no issue time.
  if ((seg.size() == 4 || seg.size() == 5) && seg[0] == "v1" && seg[1] == "ack") {
    if (m != "GET" && m != "POST") {
      auto answer = invalidLink();
      answer.status = 405;
      answer.headers.emplace_back("Allow", "GET, POST");
      return answer;
    }
    auto id = parseId(seg[2]);
    if (!id || !policy_) return invalidLink();
    const auto validMs = policy_->config().ackLinkValidMs;
    if (seg.size() == 4) {
      if (!constantTimeEquals(seg[3], policy_->legacyAckToken(*id))) return invalidLink();
      return expiredLink(*id, std::nullopt, validMs);
    }
    auto issuedS = parseId(seg[3]);
    // Seconds since 1970 below the year 5000: a genuine link's, and no overflow in ms.
    if (!issuedS || *issuedS > 100'000'000'000 ||
        !constantTimeEquals(seg[4], policy_->ackToken(*id, *issuedS))) {
      return invalidLink();
    }
    if (const auto expiresMs = *issuedS * 1000 + validMs; now_() >= expiresMs) {
      return expiredLink(*id, expiresMs, validMs);
    }
    auto title = fmt::format("Ticket #{}", *id);
    std::string result;
    if (m == "POST") {
      auto changed = changeTicketJson(state_, *id, TicketAction::kAcknowledge, kAckWho,
                                      fmt::format("from {}", r.peer), now_());
      if (changed) {
        result = "<p>Acknowledged. Thank you.</p>\n";
      } else if (changed.error().code == "ticket.state") {
        result = "<p>Nothing to acknowledge: the ticket is no longer open.</p>\n";
      } else if (changed.error().code == "ticket.unknown") {
        return invalidLink();
      } else {
        return htmlPage(500, title,
                        "<p>The home could not record the acknowledgement: " +
                            htmlEscape(changed.error().message) + ". Try again.</p>\n");
      }
    }
    auto store = openStateStore(StatePaths(state_));
    if (!store) return htmlPage(500, title, "<p>The home's database is not available.</p>\n");
    auto row = store->ticket(*id);
    if (!row) return htmlPage(500, title, "<p>The home's database is not available.</p>\n");
    if (!*row) return invalidLink();
    std::string body = result + ticketSummaryHtml(**row);
    // GET only shows: mail scanners and link previews fetch links without a person.
    if (m == "GET" && (*row)->state == "open") {
      body += "<form method=\"post\"><button type=\"submit\">Acknowledge</button></form>\n";
    }
    return htmlPage(200, title, body);
  }

  if (seg.empty() || seg[0] != "v1") return jsonError(404, "not_found", "no such endpoint");

  static constexpr std::string_view kBearer = "Bearer ";
  std::string_view auth = r.authorization;
  bool hasBearer =
      auth.size() > kBearer.size() && beast::iequals(auth.substr(0, kBearer.size()), kBearer);
  if (!hasBearer || !constantTimeEquals(auth.substr(kBearer.size()), token_)) {
    auto answer = jsonError(401, "unauthorized",
                            fmt::format("send 'Authorization: Bearer <token>' with the token of "
                                        "STATE/{}",
                                        kAdminTokenFile));
    answer.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"pass-home\"");
    return answer;
  }

  auto text = [](const Result<std::string>& body) {
    if (!body) return errorAnswer(body.error());
    return AdminResponse{200, "application/json", *body};
  };

  if (seg.size() >= 2 && seg[1] == "tickets") {
    if (seg.size() == 2) {
      if (m != "GET") return methodNotAllowed("GET");
      TicketFilter filter;
      filter.liveOnly = !query.flag("all");
      if (auto c = query.get("customer"); c && !c->empty()) filter.customer = *c;
      if (auto a = query.get("array"); a && !a->empty()) filter.array = *a;
      return text(listTickets(state_, filter, /*json=*/true));
    }
    auto id = parseId(seg[2]);
    if (!id) return jsonError(404, "ticket.unknown", fmt::format("no ticket '{}'", seg[2]));
    if (seg.size() == 3) {
      if (m != "GET") return methodNotAllowed("GET");
      return text(showTicket(state_, *id, /*json=*/true));
    }
    if (seg.size() == 4 && (seg[3] == "ack" || seg[3] == "resolve" || seg[3] == "reopen")) {
      if (m != "POST") return methodNotAllowed("POST");
      auto body = parseBody(r.body);
      if (!body) return errorAnswer(body.error());
      auto by = requiredString(*body, "by");
      if (!by) return errorAnswer(by.error());
      auto note = stringField(*body, "note");
      if (!note) return errorAnswer(note.error());
      auto action = seg[3] == "ack"       ? TicketAction::kAcknowledge
                    : seg[3] == "resolve" ? TicketAction::kResolve
                                          : TicketAction::kReopen;
      auto changed = changeTicketJson(state_, *id, action, *by, note->value_or(""), now_());
      if (!changed) return errorAnswer(changed.error());
      return jsonAnswer(200, *changed);
    }
  }

  if (seg.size() >= 2 && seg[1] == "silences") {
    if (seg.size() == 2) {
      if (m == "GET") return text(listSilences(state_, now_(), query.flag("all"), true));
      if (m != "POST") return methodNotAllowed("GET, POST");
      auto body = parseBody(r.body);
      if (!body) return errorAnswer(body.error());
      auto now = now_();
      SilenceRow silence;
      using Field = std::pair<const char*, std::string*>;
      for (auto [key, field] : {Field{"customer", &silence.customer}, Field{"site", &silence.site},
                                Field{"array", &silence.array}, Field{"code", &silence.code}}) {
        auto value = stringField(*body, key);
        if (!value) return errorAnswer(value.error());
        *field = value->value_or("");
      }
      auto reason = requiredString(*body, "reason");
      if (!reason) return errorAnswer(reason.error());
      auto by = requiredString(*body, "by");
      if (!by) return errorAnswer(by.error());
      auto starts = timeField(*body, "from", "now", now);
      if (!starts) return errorAnswer(starts.error());
      auto ends = timeField(*body, "until", "", now);
      if (!ends) return errorAnswer(ends.error());
      silence.reason = *reason;
      silence.author = *by;
      silence.startsMs = *starts;
      silence.endsMs = *ends;
      silence.createdMs = now;
      auto added = addSilenceJson(state_, silence);
      if (!added) return errorAnswer(added.error());
      return jsonAnswer(201, *added);
    }
    if (seg.size() == 3) {
      if (m != "DELETE") return methodNotAllowed("DELETE");
      auto id = parseId(seg[2]);
      if (!id) return jsonError(404, "silence.unknown", fmt::format("no silence '{}'", seg[2]));
      auto by = query.get("by");
      if (!by || by->empty()) return jsonError(400, "usage.field", "?by=NAME is required");
      auto removed = removeSilence(state_, *id, *by, now_());
      if (!removed) return errorAnswer(removed.error());
      return jsonAnswer(200, Json{{"id", *id}, {"removed", true}, {"by", *by}});
    }
  }

  if (seg.size() == 2 && seg[1] == "notify-test") {
    if (m != "POST") return methodNotAllowed("POST");
    auto body = parseBody(r.body);
    if (!body) return errorAnswer(body.error());
    auto to = requiredString(*body, "to");
    if (!to) return errorAnswer(to.error());
    auto sent = notifyTest(state_, *to, now_());
    if (!sent) return errorAnswer(sent.error());
    std::string detail = *sent;
    while (!detail.empty() && detail.back() == '\n') detail.pop_back();
    return jsonAnswer(200, Json{{"sent", true}, {"detail", detail}});
  }

  return jsonError(404, "not_found", "no such endpoint");
}

// --- the admin API's route table over the HTTPS listener ------------------------------

namespace {

// The ack link's token must not reach the log.
std::string loggedPath(std::string_view target) {
  auto path = target.substr(0, target.find('?'));
  if (!path.starts_with("/v1/ack/")) return std::string(path);
  auto slash = path.find('/', 8);
  return std::string(path.substr(0, slash)) + "/...";
}

}  // namespace

struct AdminApi::Impl {
  Impl(AdminHandler h, Logger& l) : handler(std::move(h)), log(l) {}

  RouteTable routes();
  AdminResponse answer(const HttpRequest& request, const std::string& peer);

  AdminHandler handler;
  Logger& log;
  bool tls = false;
  std::unique_ptr<HttpsListener> listener;
};

AdminResponse AdminApi::Impl::answer(const HttpRequest& request, const std::string& peer) {
  AdminRequest r{std::string(request.method_string()), std::string(request.target()),
                 std::string(request[http::field::authorization]), request.body(), peer};
  AdminResponse out;
  try {
    out = handler.handle(r);
  } catch (const std::exception& e) {
    // A request's top level: this request fails, the listener goes on.
    out = jsonError(500, "internal", e.what());
  }
  auto fields = Json{
      {"method", r.method}, {"path", loggedPath(r.target)}, {"status", out.status}, {"peer", peer}};
  if (out.status >= 500 && out.status != 502) {
    log.error("admin_request", fields);
  } else if (out.status == 502) {
    // A channel that refused a test message is the channel's failure, not the home's.
    log.warning("admin_request", fields);
  } else {
    log.info("admin_request", fields);
  }
  return out;
}

// One route takes every request: AdminHandler routes /v1/... itself, as the bearer token is
// checked before the path is (an unknown path without the token is 401, not 404).
RouteTable AdminApi::Impl::routes() {
  RouteTable table;
  table.routes.push_back(
      Route{.method = "",
            .path = "",
            .prefix = true,
            .mediaType = "",
            .maxBody = 0,
            .handler = [this](HttpRequest& request, HttpPeer& peer, Respond respond) {
              auto out = answer(request, peer.address);
              HttpAnswer http{out.status, std::move(out.contentType), std::move(out.body),
                              std::move(out.headers)};
              bool cacheControl = false;
              for (const auto& [name, value] : http.headers) {
                cacheControl = cacheControl || beast::iequals(name, "Cache-Control");
              }
              if (!cacheControl) http.headers.emplace_back("Cache-Control", "no-store");
              respond(std::move(http));
            }});
  table.refuse = [](const RouteRefusal& refusal, const HttpPeer&) -> std::optional<HttpAnswer> {
    if (refusal.kind != RouteRefusal::Kind::kTooLarge) return std::nullopt;
    return HttpAnswer{
        413,
        "application/json",
        dumpJson(Json{{"error", "usage.body"},
                      {"detail", fmt::format("the body is larger than {} bytes", refusal.limit)}}),
        {},
        true};
  };
  return table;
}

AdminApi::AdminApi(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminApi::~AdminApi() { stop(); }

Result<std::unique_ptr<AdminApi>> AdminApi::create(const AdminApiOptions& options, Logger& log) {
  auto token = loadAdminToken(options.state);
  if (!token) return std::unexpected(token.error());
  auto policy = options.policy;
  if (!policy) {
    auto loaded = loadPolicy(options.state);
    if (!loaded) return std::unexpected(loaded.error());
    policy = std::move(*loaded);
  }
  auto impl = std::make_unique<Impl>(
      AdminHandler(options.state, std::move(*token), policy, options.now), log);

  HttpsListenerOptions lo;
  lo.host = options.host;
  lo.port = options.port;
  lo.portFile = options.portFile;
  lo.threads = 1;
  lo.maxBody = options.maxBody;
  lo.maxConnections = options.maxConnections;
  lo.readTimeout = options.readTimeout;
  lo.idleTimeout = options.readTimeout;
  lo.drainTimeout = options.readTimeout;
  lo.eventPrefix = "admin_";
  lo.errorPrefix = "admin API: ";
  lo.flag = "--admin-listen";
  beast::error_code ec;
  auto address = net::ip::make_address(options.host, ec);
  // The token and the ack links must not cross a network in clear text.
  if (!ec && !address.is_loopback()) {
    StatePaths paths(options.state);
    auto cert = platform::displayPath(paths.serverCert());
    auto key = platform::displayPath(paths.serverKey());
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    if (auto restricted = restrictServerTls(ctx->native_handle()); !restricted) {
      return std::unexpected(restricted.error());
    }
    if (ctx->use_certificate_chain_file(cert, ec); ec) {
      return fail("tls", fmt::format("{}: cannot load the server certificate for the admin "
                                     "API: {}",
                                     cert, ec.message()));
    }
    if (ctx->use_private_key_file(key, ssl::context::pem, ec); ec) {
      return fail("tls", fmt::format("{}: cannot load the server key for the admin API: {}", key,
                                     ec.message()));
    }
    lo.tls = std::move(ctx);
  }
  impl->tls = lo.tls != nullptr;
  lo.listeningFields = {{"tls", impl->tls}};
  auto listener = HttpsListener::create(std::move(lo), impl->routes(), log);
  if (!listener) return std::unexpected(listener.error());
  impl->listener = std::move(*listener);
  return std::unique_ptr<AdminApi>(new AdminApi(std::move(impl)));
}

std::uint16_t AdminApi::port() const { return impl_->listener->port(); }

bool AdminApi::tls() const { return impl_->tls; }

Status AdminApi::start() { return impl_->listener->start(); }

void AdminApi::stop() {
  impl_->listener->stop();
  impl_->listener->wait();
}

}  // namespace pass::home
