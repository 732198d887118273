// nimble: an HPE Nimble Storage array (NimbleOS), read through its REST API on port 5392.
// Every run logs in (POST /v1/tokens), pages through the events past the cursor and through
// the alarms, and always logs out again (DELETE /v1/tokens/<id>), also after an error.
// Decoding is pure (parse.hpp); this file does the requests, the cursor and the settings.

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "array_https.hpp"
#include "collectors/nimble/parse.hpp"
#include "pass/collector.hpp"

namespace pass::nimble {

namespace {

using config::AttributeDecl;
using config::Type;
using nlohmann::json;

constexpr std::string_view kFamily = "nimble";
constexpr int kCursorVersion = 1;
// Bounds of the cursor: ids sharing the newest timestamp, open alarms, unreadable records.
constexpr std::size_t kMaxIdsAtNewest = 1000;
constexpr std::size_t kMaxAlarms = 2000;
constexpr std::size_t kMaxUnparsed = 1000;
constexpr std::chrono::seconds kLogoutTimeout{10};
constexpr std::size_t kMaxPageSize = 10000;
// A list this long is not an array's event log but a server that never stops paging.
constexpr std::size_t kMaxRows = 1'000'000;

/// What one run leaves for the next (the cursor file's JSON).
struct AlarmMemo {
  std::string onset;
  std::string code;
  std::string severity;
  std::string component;
};

struct Cursor {
  /// Newest event time seen (ms) and the event ids at exactly that time; nullopt before the
  /// array had any event.
  std::optional<std::int64_t> newestMs;
  std::set<std::string> idsAtNewest;
  std::map<std::string, AlarmMemo> alarms;  // active alarms by id
  std::set<std::string> unparsed;           // keys of reported records that have no time
};

std::string toJson(const Cursor& c) {
  json alarms = json::array();
  for (const auto& [id, a] : c.alarms) {
    alarms.push_back({{"id", id},
                      {"onset", a.onset},
                      {"code", a.code},
                      {"severity", a.severity},
                      {"component", a.component}});
  }
  json doc = {
      {"v", kCursorVersion},
      {"events",
       {{"newest_ms", c.newestMs ? json(*c.newestMs) : json(nullptr)}, {"ids", c.idsAtNewest}}},
      {"alarms", std::move(alarms)},
      {"unparsed", c.unparsed}};
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<Cursor> parseCursor(std::string_view text) {
  auto bad = [](std::string_view why) { return fail("error", std::string(why)); };
  auto doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
  if (doc.value("v", 0) != kCursorVersion) return bad("unknown version");
  Cursor c;
  const auto& events = doc.find("events");
  if (events == doc.end() || !events->is_object()) return bad("events: missing");
  if (auto n = events->find("newest_ms"); n != events->end() && !n->is_null()) {
    if (!n->is_number_integer()) return bad("events.newest_ms: not an integer");
    c.newestMs = n->get<std::int64_t>();
  }
  if (auto ids = events->find("ids"); ids != events->end()) {
    if (!ids->is_array()) return bad("events.ids: not an array");
    for (const auto& id : *ids) {
      if (!id.is_string()) return bad("events.ids: not a string");
      c.idsAtNewest.insert(id.get<std::string>());
    }
  }
  if (auto alarms = doc.find("alarms"); alarms != doc.end()) {
    if (!alarms->is_array()) return bad("alarms: not an array");
    for (const auto& a : *alarms) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_string()) {
        return bad("alarms: an entry without id");
      }
      auto str = [&](const char* key) {
        auto it = a.find(key);
        return it != a.end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      c.alarms[a["id"].get<std::string>()] =
          AlarmMemo{str("onset"), str("code"), str("severity"), str("component")};
    }
  }
  if (auto unparsedKeys = doc.find("unparsed"); unparsedKeys != doc.end()) {
    if (!unparsedKeys->is_array()) return bad("unparsed: not an array");
    for (const auto& k : *unparsedKeys) {
      if (!k.is_string()) return bad("unparsed: not a string");
      c.unparsed.insert(k.get<std::string>());
    }
  }
  return c;
}

/// `%XX` for everything but unreserved characters, for path segments.
std::string urlEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

class NimbleCollector final : public Collector {
 public:
  struct Limits {
    std::uint16_t port = 5392;
    std::chrono::seconds timeout{60};
    std::size_t pageSize = 500;
  };
  NimbleCollector(ArrayConfig array, Limits limits)
      : Collector(std::move(array)),
        port_(limits.port),
        timeout_(limits.timeout),
        pageSize_(limits.pageSize) {
    host_ = setting(this->array(), "address");
    user_ = setting(this->array(), "user");
  }

  std::vector<Error> checkPrerequisites() const override {
    if (auto password = readSecret(array(), "password-file"); !password) {
      return {password.error()};
    }
    return {};
  }

 protected:
  Result<Collection> doCollect(CollectContext& ctx) override {
    std::optional<Cursor> cursor;
    if (ctx.cursor) {
      auto parsed = parseCursor(*ctx.cursor);
      if (!parsed) return std::unexpected(damagedCursor(array(), parsed.error()));
      cursor = std::move(*parsed);
    }
    auto password = readSecret(array(), "password-file");
    if (!password) return std::unexpected(password.error());
    if (ctx.pins == nullptr) return fail("error", "nimble: no pin store in the context");

    deadline_ = std::chrono::steady_clock::now() + timeout_;
    ArrayHttps client(httpsOptions(timeout_), *ctx.pins, array());
    auto token = login(client, *password);
    if (!token) return std::unexpected(token.error());

    Collection out;
    auto result = collectWith(client, token->second, cursor, out);
    // Always log out, even after a failure: tokens left behind pile up on the array.
    auto loggedOut = logout(client, token->first, token->second, result.has_value(), *ctx.pins);
    if (!result) return std::unexpected(result.error());
    if (!loggedOut) out.notes.push_back(loggedOut.error().message);
    return out;
  }

 private:
  ArrayHttpsOptions httpsOptions(std::chrono::milliseconds total) const {
    ArrayHttpsOptions o;
    o.host = host_;
    o.port = port_;
    o.connectTimeout = std::min<std::chrono::milliseconds>(total, std::chrono::seconds(10));
    o.totalTimeout = total;
    o.pinName = "rest";
    return o;
  }

  std::string where(std::string_view what) const {
    return fmt::format("{} {}: {}", kFamily, array().serial, what);
  }

  /// Our code for a client error: "collector.x" becomes "nimble.x" (pins keep theirs).
  static Error renamed(Error e) {
    constexpr std::string_view kPrefix = "collector.";
    if (e.code.starts_with(kPrefix) && e.code != "collector.pin_mismatch") {
      e.code = fmt::format("{}.{}", kFamily, e.code.substr(kPrefix.size()));
    }
    return e;
  }

  Result<HttpsResponse> send(ArrayHttps& client, HttpsRequest request) {
    if (std::chrono::steady_clock::now() >= deadline_) {
      return fail("nimble.timeout",
                  where(fmt::format("the run's budget of {} s (timeout-seconds) was spent "
                                    "before {} {}",
                                    timeout_.count(), request.method, request.target)));
    }
    auto r = client.send(request);
    if (!r) return std::unexpected(renamed(r.error()));
    return r;
  }

  /// (token id, session token).
  Result<std::pair<std::string, std::string>> login(ArrayHttps& client,
                                                    const std::string& password) {
    HttpsRequest request;
    request.method = "POST";
    request.target = "/v1/tokens";
    request.body =
        json{{"data", {{"username", user_}, {"password", password}, {"app_name", "pass-agent"}}}}
            .dump(-1, ' ', false, json::error_handler_t::replace);
    auto r = send(client, std::move(request));
    if (!r) return std::unexpected(r.error());
    if (r->status == 401 || r->status == 403) {
      return fail("nimble.login_failed",
                  where(fmt::format("the array refused user \"{}\" (HTTP {}: {}); check user and "
                                    "password-file",
                                    user_, r->status, errorText(r->body))));
    }
    if (r->status < 200 || r->status > 299) {
      return fail("nimble.error", where(fmt::format("POST /v1/tokens answered HTTP {}: {}",
                                                    r->status, errorText(r->body))));
    }
    auto doc = json::parse(r->body, nullptr, false);
    const json* data = nullptr;
    if (doc.is_object() && doc.contains("data") && doc["data"].is_object()) data = &doc["data"];
    auto str = [&](const char* key) {
      if (data == nullptr) return std::string();
      auto it = data->find(key);
      return it != data->end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    std::string id = str("id");
    std::string session = str("session_token");
    if (session.empty()) {
      return fail("nimble.bad_output",
                  where(fmt::format("POST /v1/tokens: $.data.session_token: missing; the answer "
                                    "starts: {}",
                                    excerpt(r->body))));
    }
    return std::pair{std::move(id), std::move(session)};
  }

  Status logout(ArrayHttps& client, const std::string& id, const std::string& session,
                bool clientHealthy, PinStore& pins) {
    if (id.empty()) return fail("nimble.error", where("the login answer had no token id to end"));
    HttpsRequest request;
    request.method = "DELETE";
    request.target = "/v1/tokens/" + urlEncode(id);
    request.headers = {{"X-Auth-Token", session}};
    // After a failure the run's budget may be spent and the connection broken: a fresh one
    // with a short timeout of its own.
    std::optional<ArrayHttps> fresh;
    ArrayHttps* via = &client;
    if (!clientHealthy || std::chrono::steady_clock::now() >= deadline_) {
      fresh.emplace(httpsOptions(std::min<std::chrono::milliseconds>(timeout_, kLogoutTimeout)),
                    pins, array());
      via = &*fresh;
    }
    auto r = via->send(request);
    if (!r) {
      return fail("nimble.error",
                  where(fmt::format("could not end the session ({}); it expires on the array "
                                    "by itself",
                                    r.error().message)));
    }
    if (r->status < 200 || r->status > 299) {
      return fail("nimble.error", where(fmt::format("DELETE /v1/tokens/{} answered HTTP {}: {}", id,
                                                    r->status, errorText(r->body))));
    }
    return {};
  }

  /// Every record of a list, page by page.
  Result<std::vector<json>> list(ArrayHttps& client, const std::string& session,
                                 std::string_view path, bool sorted, Collection& out) {
    std::vector<json> all;
    std::int64_t start = 0;
    const auto size = static_cast<std::int64_t>(pageSize_);
    for (;;) {
      HttpsRequest request;
      request.target = fmt::format("{}?startRow={}&endRow={}&pageSize={}{}", path, start,
                                   start + size, size, sorted ? "&sortBy=timestamp" : "");
      request.headers = {{"X-Auth-Token", session}, {"Accept", "application/json"}};
      auto r = send(client, request);
      if (!r) return std::unexpected(r.error());
      if (r->status == 400 && sorted && start == 0) {
        // Sorting is a wish, not a need (the cursor filters): an array that refuses it is
        // read unsorted.
        out.notes.push_back(
            where(fmt::format("{} refused sortBy=timestamp ({}); reading "
                              "unsorted",
                              path, errorText(r->body))));
        sorted = false;
        continue;
      }
      if (r->status == 401) {
        return fail("nimble.login_failed",
                    where(fmt::format("GET {}: the session token was refused (HTTP 401: {})",
                                      request.target, errorText(r->body))));
      }
      if (r->status != 200 && r->status != 206) {
        return fail("nimble.error", where(fmt::format("GET {} answered HTTP {}: {}", request.target,
                                                      r->status, errorText(r->body))));
      }
      auto page = parsePage(r->body, where("GET " + request.target));
      if (!page) return std::unexpected(page.error());
      const auto got = static_cast<std::int64_t>(page->records.size());
      for (auto& record : page->records) all.push_back(std::move(record));
      start += got;
      if (got == 0) break;
      if (all.size() > kMaxRows) {
        return fail("nimble.bad_output",
                    where(fmt::format("GET {}: more than {} rows; the paging does not end", path,
                                      kMaxRows)));
      }
      if (page->totalRows ? start >= *page->totalRows : got < size) break;
    }
    return all;
  }

  Status collectWith(ArrayHttps& client, const std::string& session,
                     const std::optional<Cursor>& cursor, Collection& out) {
    auto events = list(client, session, "/v1/events/detail", true, out);
    if (!events) return std::unexpected(events.error());
    auto alarms = list(client, session, "/v1/alarms/detail", false, out);
    if (!alarms) return std::unexpected(alarms.error());

    Cursor next;
    if (cursor) {
      next.newestMs = cursor->newestMs;
      next.idsAtNewest = cursor->idsAtNewest;
    }
    // Only records still on the array need remembering: the set stays as small as they are.
    std::set<std::string> unparsedSeen;
    std::vector<EventRecord> fresh;
    for (const auto& record : *events) {
      EventRecord e = readEvent(record);
      if (!e.ms) {
        unparsedSeen.insert(e.key);
        if (cursor && !cursor->unparsed.contains(e.key)) fresh.push_back(std::move(e));
        continue;
      }
      bool isNew = !cursor || !cursor->newestMs || *e.ms > *cursor->newestMs ||
                   (*e.ms == *cursor->newestMs && !cursor->idsAtNewest.contains(e.key));
      if (!next.newestMs || *e.ms > *next.newestMs) {
        next.newestMs = e.ms;
        next.idsAtNewest.clear();
      }
      if (*e.ms == *next.newestMs) next.idsAtNewest.insert(e.key);
      if (isNew && cursor) fresh.push_back(std::move(e));
    }
    std::ranges::stable_sort(fresh, [](const EventRecord& a, const EventRecord& b) {
      return a.ms.value_or(0) < b.ms.value_or(0);
    });
    for (auto& e : fresh) out.events.push_back(std::move(e.event));
    if (!cursor) {
      out.notes.push_back(where(fmt::format(
          "first run: the {} event(s) already on the array are not reported, only those from "
          "now on; open alarms are",
          events->size())));
    }

    std::set<std::string> activeIds;
    for (const auto& record : *alarms) {
      AlarmRecord a = readAlarm(record);
      if (a.id.empty()) {
        unparsedSeen.insert(a.event.id);
        if (!cursor || !cursor->unparsed.contains(a.event.id)) {
          out.events.push_back(std::move(a.event));
        }
        continue;
      }
      if (!a.active || activeIds.contains(a.id)) continue;
      activeIds.insert(a.id);
      const AlarmMemo* before = nullptr;
      if (cursor) {
        auto it = cursor->alarms.find(a.id);
        if (it != cursor->alarms.end()) before = &it->second;
      }
      if (next.alarms.size() < kMaxAlarms) {
        next.alarms[a.id] = AlarmMemo{a.onset, a.event.code, a.event.severity, a.event.component};
      }
      // New, or the same alarm raised again (a re-onset changes its onset event).
      if (before == nullptr || before->onset != a.onset) out.events.push_back(std::move(a.event));
    }
    if (cursor) {
      for (const auto& [id, memo] : cursor->alarms) {
        if (activeIds.contains(id)) continue;
        CollectedEvent r;
        r.id = fmt::format("alarm:{}:{}:recovery", id, memo.onset);
        r.kind = "recovery";
        r.code = memo.code;
        r.severity = memo.severity;
        r.component = memo.component;
        r.text = fmt::format("alarm {} is no longer open on the array", id);
        r.raw = json{{"id", id}, {"curr_onset_event_id", memo.onset}}.dump();
        out.events.push_back(std::move(r));
      }
    }
    if (activeIds.size() > kMaxAlarms) {
      out.notes.push_back(where(
          fmt::format("{} open alarms; only {} are remembered", activeIds.size(), kMaxAlarms)));
    }
    for (const auto& key : unparsedSeen) {
      if (next.unparsed.size() >= kMaxUnparsed) break;
      next.unparsed.insert(key);
    }
    while (next.idsAtNewest.size() > kMaxIdsAtNewest) {
      next.idsAtNewest.erase(std::prev(next.idsAtNewest.end()));
    }
    out.cursor = toJson(next);
    return {};
  }

  std::string host_;
  std::uint16_t port_ = 5392;
  std::string user_;
  std::chrono::seconds timeout_{60};
  std::size_t pageSize_ = 500;
  std::chrono::steady_clock::time_point deadline_;
};

Result<std::unique_ptr<Collector>> create(const ArrayConfig& array) {
  auto port = uintSetting(array, "rest-port", 1, 65535);
  if (!port) return std::unexpected(port.error());
  auto pageSize = uintSetting(array, "page-size", 1, kMaxPageSize);
  if (!pageSize) return std::unexpected(pageSize.error());
  auto timeout = uintSetting(array, "timeout-seconds", 1, 3600);
  if (!timeout) return std::unexpected(timeout.error());
  if (setting(array, "address").empty()) {
    return fail("config", fmt::format("{}: address is empty", array.where));
  }
  return std::make_unique<NimbleCollector>(
      array,
      NimbleCollector::Limits{static_cast<std::uint16_t>(*port), std::chrono::seconds(*timeout),
                              static_cast<std::size_t>(*pageSize)});
}

/// `pass-agent parse --family nimble --source events|alarms FILE`: one captured page.
Result<std::vector<CollectedEvent>> parseEvents(std::string_view text, const ArrayConfig&) {
  auto page = parsePage(text, "the events page");
  if (!page) return std::unexpected(page.error());
  std::vector<CollectedEvent> out;
  for (const auto& record : page->records) out.push_back(readEvent(record).event);
  return out;
}

Result<std::vector<CollectedEvent>> parseAlarms(std::string_view text, const ArrayConfig&) {
  auto page = parsePage(text, "the alarms page");
  if (!page) return std::unexpected(page.error());
  std::vector<CollectedEvent> out;
  for (const auto& record : page->records) out.push_back(readAlarm(record).event);
  return out;
}

}  // namespace

void registerCollector(CollectorRegistry& registry) {
  CollectorInfo info;
  info.family = kFamily;
  info.element = "nimble";
  info.description =
      "An HPE Nimble Storage array (NimbleOS; also Alletra 5000/6000), read through its REST "
      "API: new events and open alarms.";
  info.settings = {
      AttributeDecl{{},
                    "address",
                    Type::kString,
                    true,
                    {},
                    "The group's management address (IP or host name)."},
      AttributeDecl{{}, "rest-port", Type::kUint, false, "5392", "The REST API's HTTPS port."},
      AttributeDecl{{},
                    "user",
                    Type::kString,
                    true,
                    {},
                    "The REST user (a read-only role such as guest or operator is enough)."},
      AttributeDecl{{},
                    "password-file",
                    Type::kPath,
                    true,
                    {},
                    "A file whose first line is the user's password."},
      AttributeDecl{{},
                    "timeout-seconds",
                    Type::kUint,
                    false,
                    "60",
                    "The whole run's budget for this array, and each request's timeout."},
      AttributeDecl{{},
                    "page-size",
                    Type::kUint,
                    false,
                    "500",
                    "Rows asked for per request when paging through events and alarms (1 to "
                    "10000)."},
  };
  info.create = create;
  info.sources = {
      ParseSource{"events", "one JSON page of GET /v1/events/detail", parseEvents},
      ParseSource{"alarms", "one JSON page of GET /v1/alarms/detail", parseAlarms},
  };
  registry.add(std::move(info));
}

}  // namespace pass::nimble
