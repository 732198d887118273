// The admin API: bearer tokens, acknowledgement links, and its route table over the HTTPS
// listener.

#include "pass/home/admin_api.hpp"

#include <charconv>
#include <expected>
#include <functional>

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
// Every acknowledgement link's path starts with it.
constexpr std::string_view kAckPrefix = "/v1/ack/";

std::string dumpJson(const Json& j) {
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

HttpAnswer jsonAnswer(unsigned status, const Json& body) {
  return HttpAnswer{status, "application/json", dumpJson(body)};
}

HttpAnswer jsonError(unsigned status, std::string_view code, std::string_view detail) {
  return jsonAnswer(status, Json{{"error", code}, {"detail", detail}});
}

// Store and admin errors as HTTP: the caller's mistakes are 4xx, ours 5xx.
HttpAnswer errorAnswer(const Error& error) {
  const auto& c = error.code;
  unsigned status = 500;
  if (c == "ticket.unknown" || c == "silence.unknown") status = 404;
  if (c == "ticket.state") status = 409;
  if (c.starts_with("usage") || c == "silence.invalid") status = 400;
  if (c == "notify.failed") status = 502;
  return jsonError(status, c, error.message);
}

// A store function's JSON text as the answer.
HttpAnswer textAnswer(const Result<std::string>& body) {
  if (!body) return errorAnswer(body.error());
  return HttpAnswer{200, "application/json", *body};
}

HttpAnswer unauthorized() {
  auto answer = jsonError(401, "unauthorized",
                          fmt::format("send 'Authorization: Bearer <token>' with the token of "
                                      "STATE/{}",
                                      StatePaths("").adminToken().filename().string()));
  answer.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"pass-home\"");
  return answer;
}

// Answers hold tickets and tokens: no caches, unless the answer says otherwise.
HttpAnswer noStore(HttpAnswer answer) {
  bool cacheControl = false;
  for (const auto& [name, value] : answer.headers) {
    cacheControl = cacheControl || beast::iequals(name, "Cache-Control");
  }
  if (!cacheControl) answer.headers.emplace_back("Cache-Control", "no-store");
  return answer;
}

std::optional<std::int64_t> parseId(std::string_view text) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v <= 0) return std::nullopt;
  return v;
}

// A ticket's id in the path, or the 404 for a path segment that names none.
std::expected<std::int64_t, HttpAnswer> ticketId(std::string_view segment) {
  auto id = parseId(segment);
  if (!id) {
    return std::unexpected(
        jsonError(404, "ticket.unknown", fmt::format("no ticket '{}'", segment)));
  }
  return *id;
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
  // The lengths are public (a token is always 64 or 32 hex digits); the contents are not.
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// "Bearer <token>", the scheme in any case.
bool hasBearerToken(std::string_view authorization, std::string_view token) {
  static constexpr std::string_view kBearer = "Bearer ";
  return authorization.size() > kBearer.size() &&
         beast::iequals(authorization.substr(0, kBearer.size()), kBearer) &&
         constantTimeEquals(authorization.substr(kBearer.size()), token);
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
HttpAnswer htmlPage(unsigned status, std::string_view heading, std::string_view body) {
  HttpAnswer answer;
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

HttpAnswer invalidLink() {
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
HttpAnswer expiredLink(std::int64_t ticket, std::optional<std::int64_t> expiredMs,
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
  auto file = StatePaths(state).adminToken();
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

// --- the admin API's route table over the HTTPS listener ------------------------------

namespace {

// The ack link's token must not reach the log.
std::string loggedPath(std::string_view target) {
  auto path = target.substr(0, target.find('?'));
  if (!path.starts_with(kAckPrefix)) return std::string(path);
  auto slash = path.find('/', kAckPrefix.size());
  return std::string(path.substr(0, slash)) + "/...";
}

/// A request as an admin handler sees it: the path's segments, decoded ("/v1/tickets/7" is
/// "v1", "tickets", "7"), and the query.
struct AdminCall {
  const HttpRequest& request;
  const std::string& peer;
  std::vector<std::string> segments;
  Query query;
};

/// Who may call a route: the holder of the bearer token, or anyone with a link that carries
/// its own credential in the path.
enum class Access { kToken, kLink };

/// The admin API's endpoints, one function each, and the route table that calls them. Shared
/// by the table's handlers, which live as long as the listener.
class AdminRoutes : public std::enable_shared_from_this<AdminRoutes> {
 public:
  AdminRoutes(const AdminApiOptions& options, std::string token,
              std::shared_ptr<const Policy> policy, Logger& log)
      : state_(options.state),
        token_(std::move(token)),
        policy_(std::move(policy)),
        now_(options.now),
        log_(log) {}

  RouteTable table();

 private:
  using Endpoint = std::function<HttpAnswer(const AdminCall&)>;

  Route route(std::string method, std::string path, Access access, Endpoint endpoint);
  HttpAnswer serve(Access access, const Endpoint& endpoint, const HttpRequest& request,
                   const std::string& peer);
  std::optional<HttpAnswer> refuse(const RouteRefusal& refusal, const HttpPeer& peer);
  void logRequest(std::string_view method, std::string_view target, const std::string& peer,
                  unsigned status);

  HttpAnswer listTickets(const AdminCall& call);
  HttpAnswer showTicket(const AdminCall& call);
  HttpAnswer changeTicket(const AdminCall& call, TicketAction action);
  HttpAnswer listSilences(const AdminCall& call);
  HttpAnswer addSilence(const AdminCall& call);
  HttpAnswer removeSilence(const AdminCall& call);
  HttpAnswer notifyTestMessage(const AdminCall& call);
  HttpAnswer ackLink(const AdminCall& call);

  std::filesystem::path state_;
  std::string token_;
  std::shared_ptr<const Policy> policy_;
  NowMs now_;
  Logger& log_;
};

// Every endpoint: one method and one path ("*" stands for one segment, an id); the listener
// answers an unknown path (404) and a wrong method (405 with Allow) through refuse().
RouteTable AdminRoutes::table() {
  RouteTable table;
  auto add = [&](std::string method, std::string path, Access access, auto member) {
    table.routes.push_back(
        route(std::move(method), std::move(path), access,
              [this, member](const AdminCall& call) { return (this->*member)(call); }));
  };
  add("GET", "/v1/tickets", Access::kToken, &AdminRoutes::listTickets);
  add("GET", "/v1/tickets/*", Access::kToken, &AdminRoutes::showTicket);
  for (auto [verb, action] :
       {std::pair{"ack", TicketAction::kAcknowledge}, std::pair{"resolve", TicketAction::kResolve},
        std::pair{"reopen", TicketAction::kReopen}}) {
    table.routes.push_back(
        route("POST", fmt::format("/v1/tickets/*/{}", verb), Access::kToken,
              [this, action](const AdminCall& call) { return changeTicket(call, action); }));
  }
  add("GET", "/v1/silences", Access::kToken, &AdminRoutes::listSilences);
  add("POST", "/v1/silences", Access::kToken, &AdminRoutes::addSilence);
  add("DELETE", "/v1/silences/*", Access::kToken, &AdminRoutes::removeSilence);
  add("POST", "/v1/notify-test", Access::kToken, &AdminRoutes::notifyTestMessage);
  // /v1/ack/<ticket>/<issued seconds>/<token>, or the first format without the issue time:
  // every path under the prefix is a link, valid or not (one 404 page for all wrong ones).
  for (const char* method : {"GET", "POST"}) {
    auto link = route(method, std::string(kAckPrefix), Access::kLink,
                      [this](const AdminCall& call) { return ackLink(call); });
    link.prefix = true;
    table.routes.push_back(std::move(link));
  }
  table.refuse = [self = shared_from_this()](const RouteRefusal& refusal, const HttpPeer& peer) {
    return self->refuse(refusal, peer);
  };
  return table;
}

Route AdminRoutes::route(std::string method, std::string path, Access access, Endpoint endpoint) {
  return Route{.method = std::move(method),
               .path = std::move(path),
               .prefix = false,
               .mediaType = "",
               .maxBody = 0,
               .handler =
                   [self = shared_from_this(), access, endpoint = std::move(endpoint)](
                       HttpRequest& request, HttpPeer& peer, Respond respond) {
                     respond(self->serve(access, endpoint, request, peer.address));
                   },
               .query = true};
}

// The steps every endpoint shares: the target parsed, the token checked, the endpoint run (a
// request's top level: an exception fails this request, the listener goes on), the request
// logged, no caching.
HttpAnswer AdminRoutes::serve(Access access, const Endpoint& endpoint, const HttpRequest& request,
                              const std::string& peer) {
  HttpAnswer out;
  try {
    out = [&] {
      auto url = urls::parse_origin_form(request.target());
      if (!url) return jsonError(400, "usage.target", "the request target is not a path");
      AdminCall call{request, peer, {}, {}};
      for (auto s : url->segments()) call.segments.push_back(std::string(s));
      for (auto p : url->params()) call.query.params.emplace_back(p.key, p.value);
      if (access == Access::kToken &&
          !hasBearerToken(request[http::field::authorization], token_)) {
        return unauthorized();
      }
      return endpoint(call);
    }();
  } catch (const std::exception& e) {
    out = jsonError(500, "internal", e.what());
  }
  logRequest(request.method_string(), request.target(), peer, out.status);
  return noStore(std::move(out));
}

std::optional<HttpAnswer> AdminRoutes::refuse(const RouteRefusal& refusal, const HttpPeer& peer) {
  using Kind = RouteRefusal::Kind;
  HttpAnswer out;
  switch (refusal.kind) {
    case Kind::kNotFound:
      out = jsonError(404, "not_found", "no such endpoint");
      break;
    case Kind::kMethodNotAllowed:
      // A link is answered as a link: the same page as a wrong one, with its status.
      out = refusal.target.starts_with(kAckPrefix)
                ? invalidLink()
                : jsonError(405, "method", fmt::format("use {}", refusal.allow));
      out.status = 405;
      out.headers.emplace_back("Allow", refusal.allow);
      break;
    case Kind::kTooLarge:
      out = jsonError(413, "usage.body",
                      fmt::format("the body is larger than {} bytes", refusal.limit));
      break;
    case Kind::kUnsupportedMediaType:  // no admin route names a media type
    case Kind::kMalformed:
      return std::nullopt;
  }
  logRequest(refusal.method, refusal.target, peer.address, out.status);
  return noStore(std::move(out));
}

void AdminRoutes::logRequest(std::string_view method, std::string_view target,
                             const std::string& peer, unsigned status) {
  auto fields =
      Json{{"method", method}, {"path", loggedPath(target)}, {"status", status}, {"peer", peer}};
  if (status >= 500 && status != 502) {
    log_.error("admin_request", fields);
  } else if (status == 502) {
    // A channel that refused a test message is the channel's failure, not the home's.
    log_.warning("admin_request", fields);
  } else {
    log_.info("admin_request", fields);
  }
}

HttpAnswer AdminRoutes::listTickets(const AdminCall& call) {
  TicketFilter filter;
  filter.liveOnly = !call.query.flag("all");
  if (auto c = call.query.get("customer"); c && !c->empty()) filter.customer = *c;
  if (auto a = call.query.get("array"); a && !a->empty()) filter.array = *a;
  return textAnswer(home::listTickets(state_, filter, /*json=*/true));
}

HttpAnswer AdminRoutes::showTicket(const AdminCall& call) {
  auto id = ticketId(call.segments[2]);
  if (!id) return id.error();
  return textAnswer(home::showTicket(state_, *id, /*json=*/true));
}

HttpAnswer AdminRoutes::changeTicket(const AdminCall& call, TicketAction action) {
  auto id = ticketId(call.segments[2]);
  if (!id) return id.error();
  auto body = parseBody(call.request.body());
  if (!body) return errorAnswer(body.error());
  auto by = requiredString(*body, "by");
  if (!by) return errorAnswer(by.error());
  auto note = stringField(*body, "note");
  if (!note) return errorAnswer(note.error());
  auto changed = changeTicketJson(state_, *id, action, *by, note->value_or(""), now_());
  if (!changed) return errorAnswer(changed.error());
  return jsonAnswer(200, *changed);
}

HttpAnswer AdminRoutes::listSilences(const AdminCall& call) {
  return textAnswer(home::listSilences(state_, now_(), call.query.flag("all"), true));
}

HttpAnswer AdminRoutes::addSilence(const AdminCall& call) {
  auto body = parseBody(call.request.body());
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

HttpAnswer AdminRoutes::removeSilence(const AdminCall& call) {
  const auto& segment = call.segments[2];
  auto id = parseId(segment);
  if (!id) return jsonError(404, "silence.unknown", fmt::format("no silence '{}'", segment));
  auto by = call.query.get("by");
  if (!by || by->empty()) return jsonError(400, "usage.field", "?by=NAME is required");
  auto removed = home::removeSilence(state_, *id, *by, now_());
  if (!removed) return errorAnswer(removed.error());
  return jsonAnswer(200, Json{{"id", *id}, {"removed", true}, {"by", *by}});
}

HttpAnswer AdminRoutes::notifyTestMessage(const AdminCall& call) {
  auto body = parseBody(call.request.body());
  if (!body) return errorAnswer(body.error());
  auto to = requiredString(*body, "to");
  if (!to) return errorAnswer(to.error());
  auto sent = notifyTest(state_, *to, now_());
  if (!sent) return errorAnswer(sent.error());
  std::string detail = *sent;
  while (!detail.empty() && detail.back() == '\n') detail.pop_back();
  return jsonAnswer(200, Json{{"sent", true}, {"detail", detail}});
}

// GET shows the ticket and a button, POST acknowledges: mail scanners and link previews fetch
// links without a person.
HttpAnswer AdminRoutes::ackLink(const AdminCall& call) {
  const auto& seg = call.segments;  // "v1", "ack", ticket[, issued seconds], token
  if (seg.size() != 4 && seg.size() != 5) return invalidLink();
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
  const bool post = call.request.method() == http::verb::post;
  auto title = fmt::format("Ticket #{}", *id);
  std::string result;
  if (post) {
    auto changed = changeTicketJson(state_, *id, TicketAction::kAcknowledge, kAckWho,
                                    fmt::format("from {}", call.peer), now_());
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
  if (!post && (*row)->state == "open") {
    body += "<form method=\"post\"><button type=\"submit\">Acknowledge</button></form>\n";
  }
  return htmlPage(200, title, body);
}

}  // namespace

Result<std::unique_ptr<HttpsListener>> createAdminListener(const AdminApiOptions& options,
                                                           Logger& log) {
  auto token = loadAdminToken(options.state);
  if (!token) return std::unexpected(token.error());
  auto policy = options.policy;
  if (!policy) {
    auto loaded = loadPolicy(options.state);
    if (!loaded) return std::unexpected(loaded.error());
    policy = std::move(*loaded);
  }
  auto routes = std::make_shared<AdminRoutes>(options, std::move(*token), std::move(policy), log);

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
  lo.listeningFields = {{"tls", lo.tls != nullptr}};
  return HttpsListener::create(std::move(lo), routes->table(), log);
}

}  // namespace pass::home
