// hpe_3par: the collector for HPE 3PAR arrays. It reads the alert list through the CLI over SSH
// (`showalert -d -all`) and, when configured, the WSAPI event log over HTTPS. Parsing and the
// cursor are pure (parse.hpp); this file wires them to the configuration, the pins, the two
// transports and `pass-agent parse`.

#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "array_https.hpp"
#include "collectors/hpe_3par/parse.hpp"
#include "collectors/hpe_3par/ssh.hpp"
#include "pass/collector.hpp"
#include "platform/fs.hpp"

namespace pass::hpe_3par {

namespace {

using config::AttributeDecl;
using config::Type;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kFamily = "hpe_3par";
/// All alerts, so that a Fixed one is seen (plain `showalert` lists only New ones); -d prints
/// the Key : value blocks.
constexpr std::string_view kShowAlert = "showalert -d -all";
/// delfin's query for alerts; the WSAPI wants the quotes, percent-encoded here.
constexpr std::string_view kEventLogTarget = "/api/v1/eventlog?query=%22category%20EQ%202%22";
constexpr std::string_view kSessionHeader = "X-HP3PAR-WSAPI-SessionKey";

enum class Source { kSsh, kWsapi, kBoth };

struct Settings {
  std::string host;
  std::uint16_t sshPort = 22;
  std::uint16_t wsapiPort = 8080;
  std::string user;
  std::filesystem::path keyFile;
  bool hasPassword = false;
  Source source = Source::kSsh;
  std::chrono::seconds timeout{60};
  ZoneTable zones;
  TextEncoding encoding;  // of the CLI's text
};

Result<Settings> readSettings(const ArrayConfig& array) {
  Settings s;
  s.host = setting(array, "address");
  s.user = setting(array, "user");
  if (s.host.empty()) return fail("config", fmt::format("{}: address is empty", array.where));
  if (s.user.empty()) return fail("config", fmt::format("{}: user is empty", array.where));
  auto sshPort = uintSetting(array, "ssh-port", 1, 65535);
  if (!sshPort) return std::unexpected(sshPort.error());
  auto wsapiPort = uintSetting(array, "wsapi-port", 1, 65535);
  if (!wsapiPort) return std::unexpected(wsapiPort.error());
  auto timeout = uintSetting(array, "timeout-seconds", 1, 3600);
  if (!timeout) return std::unexpected(timeout.error());
  s.sshPort = static_cast<std::uint16_t>(*sshPort);
  s.wsapiPort = static_cast<std::uint16_t>(*wsapiPort);
  s.timeout = std::chrono::seconds(*timeout);
  const std::string& source = setting(array, "source");
  if (source == "ssh") {
    s.source = Source::kSsh;
  } else if (source == "wsapi") {
    s.source = Source::kWsapi;
  } else if (source == "both") {
    s.source = Source::kBoth;
  } else {
    return fail("config", fmt::format("{}: source must be ssh, wsapi or both, got \"{}\"",
                                      array.where, source));
  }
  s.keyFile = settingPath(array, "key-file");
  s.hasPassword = !setting(array, "password-file").empty();
  if (s.source != Source::kWsapi && s.keyFile.empty() && !s.hasPassword) {
    return fail("config",
                fmt::format("{}: the CLI over SSH needs password-file or key-file", array.where));
  }
  if (s.source != Source::kSsh && !s.hasPassword) {
    return fail("config",
                fmt::format("{}: the WSAPI (source {}) needs password-file", array.where, source));
  }
  auto zones = zonesWithOverrides(setting(array, "zone-abbreviations"));
  if (!zones) {
    return fail("config",
                fmt::format("{}: zone-abbreviations: {}", array.where, zones.error().message));
  }
  s.zones = std::move(*zones);
  auto encoding = encodingSetting(array);
  if (!encoding) return std::unexpected(encoding.error());
  s.encoding = *encoding;
  return s;
}

std::string percentEncode(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

/// The WSAPI's error body {"code": N, "desc": "..."} as a short phrase, or the body's start.
std::string wsapiErrorText(const HttpsResponse& response) {
  auto doc = nlohmann::json::parse(response.body, nullptr, false);
  if (doc.is_object() && doc.contains("desc") && doc["desc"].is_string()) {
    std::string code = doc.contains("code") ? doc["code"].dump() : "?";
    return fmt::format("HTTP {}, WSAPI code {}: {}", response.status, code,
                       doc["desc"].get<std::string>());
  }
  std::string body = response.body.substr(0, 80);
  for (char& c : body) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return fmt::format("HTTP {}: \"{}\"", response.status, body);
}

class ThreeParCollector final : public Collector {
 public:
  ThreeParCollector(ArrayConfig array, Settings settings)
      : Collector(std::move(array)), settings_(std::move(settings)) {
    who_ = fmt::format("{} {}", kFamily, this->array().serial);
  }

  std::vector<Error> checkPrerequisites() const override {
    std::vector<Error> problems;
    checkSecret(array(), "password-file", problems);
    if (!settings_.keyFile.empty()) {
      if (auto key = platform::readFile(settings_.keyFile); !key) {
        problems.push_back(
            Error{"config", fmt::format("{}: key-file: {}", array().where, key.error().message)});
      }
    }
    return problems;
  }

 protected:
  Result<Collection> doCollect(CollectContext& ctx) override {
    const auto deadline = Clock::now() + settings_.timeout;
    AlertCursor cursor;
    if (ctx.cursor) {
      auto parsed = parseCursor(*ctx.cursor);
      if (!parsed) return std::unexpected(damagedCursor(array(), parsed.error()));
      cursor = std::move(*parsed);
    }
    MemoryPinStore runPins;  // only when the caller has no durable store (tests)
    PinStore& pins = ctx.pins != nullptr ? *ctx.pins : runPins;
    Collection out;
    if (settings_.source != Source::kWsapi) {
      auto text = readShowAlert(pins, deadline);
      if (!text) return std::unexpected(text.error());
      auto blocks = parseShowAlert(*text, settings_.zones, settings_.encoding);
      if (!blocks) {
        return fail(blocks.error().code, fmt::format("{}: {}", who_, blocks.error().message));
      }
      auto diff = followAlerts(*blocks, cursor);
      append(out, std::move(diff));
    }
    if (settings_.source != Source::kSsh) {
      auto page = readEventLog(pins, deadline, out.notes);
      if (!page) return std::unexpected(page.error());
      auto diff = followEventLog(*page, cursor);
      append(out, std::move(diff));
    }
    out.cursor = toJson(cursor);
    return out;
  }

 private:
  /// Both sources name an alert by its Id, so an alert seen by both is reported once.
  static void append(Collection& out, AlertDiff diff) {
    for (auto& note : diff.notes) out.notes.push_back(std::move(note));
    for (auto& event : diff.events) {
      bool seen = false;
      for (const auto& e : out.events) seen = seen || e.id == event.id;
      if (!seen) out.events.push_back(std::move(event));
    }
  }

  Result<std::string> readShowAlert(PinStore& pins, Clock::time_point deadline) {
    SshClient ssh(std::string(kFamily), who_);
    if (auto c = ssh.connect(settings_.host, settings_.sshPort, settings_.user, deadline); !c) {
      return std::unexpected(c.error());
    }
    auto seen = ssh.hostKeyFingerprint();
    if (!seen) return std::unexpected(seen.error());
    // The pin is checked before any secret leaves the agent.
    if (auto pinned = pins.find("ssh")) {
      if (*pinned != *seen)
        return std::unexpected(pinMismatch(array(), "SSH host key", *pinned, *seen));
    } else if (auto r = pins.remember("ssh", *seen); !r) {
      return std::unexpected(r.error());
    }
    if (!settings_.keyFile.empty()) {
      if (auto a = ssh.authenticateKey(settings_.keyFile); !a) return std::unexpected(a.error());
    } else {
      auto password = readSecret(array(), "password-file");
      if (!password) return std::unexpected(password.error());
      if (auto a = ssh.authenticatePassword(*password); !a) return std::unexpected(a.error());
    }
    auto output = ssh.exec(kShowAlert, deadline);
    if (!output) return std::unexpected(output.error());
    if (output->exitStatus > 0) {
      std::string err = output->err.empty() ? output->out : output->err;
      if (err.size() > 120) err.resize(120);
      for (char& c : err) {
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
      }
      return fail("hpe_3par.bad_output", fmt::format("{}: `{}` exited with status {}: \"{}\"", who_,
                                                     kShowAlert, output->exitStatus, err));
    }
    return std::move(output->out);
  }

  Result<EventLogPage> readEventLog(PinStore& pins, Clock::time_point deadline,
                                    std::vector<std::string>& notes) {
    auto password = readSecret(array(), "password-file");
    if (!password) return std::unexpected(password.error());
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return fail("hpe_3par.timeout", fmt::format("{}: no time left for the WSAPI", who_));
    }
    ArrayHttpsOptions options;
    options.host = settings_.host;
    options.port = settings_.wsapiPort;
    options.totalTimeout = left;
    options.connectTimeout = std::min(left, std::chrono::milliseconds(10000));
    options.pinName = "wsapi";
    ArrayHttps https(options, pins, array());

    HttpsRequest login;
    login.method = "POST";
    login.target = "/api/v1/credentials";
    login.body = nlohmann::json{{"user", settings_.user}, {"password", *password}}.dump();
    auto loggedIn = https.send(login);
    if (!loggedIn) return std::unexpected(loggedIn.error());
    if (loggedIn->status == 400 || loggedIn->status == 401 || loggedIn->status == 403) {
      return fail("hpe_3par.login_failed",
                  fmt::format("{}: the WSAPI at {}:{} refused user {} ({})", who_, settings_.host,
                              settings_.wsapiPort, settings_.user, wsapiErrorText(*loggedIn)));
    }
    auto keyDoc = nlohmann::json::parse(loggedIn->body, nullptr, false);
    if (loggedIn->status != 201 && loggedIn->status != 200) {
      return fail("hpe_3par.bad_output", fmt::format("{}: POST /api/v1/credentials answered {}",
                                                     who_, wsapiErrorText(*loggedIn)));
    }
    if (!keyDoc.is_object() || !keyDoc.contains("key") || !keyDoc["key"].is_string() ||
        keyDoc["key"].get<std::string>().empty()) {
      return fail("hpe_3par.bad_output",
                  fmt::format("{}: POST /api/v1/credentials: $.key missing in the answer", who_));
    }
    const std::string key = keyDoc["key"].get<std::string>();

    HttpsRequest get;
    get.target = std::string(kEventLogTarget);
    get.headers.emplace_back(std::string(kSessionHeader), key);
    auto answer = https.send(get);

    // Sessions are limited per user and array: the key is given back whatever happened above.
    HttpsRequest logout;
    logout.method = "DELETE";
    logout.target = "/api/v1/credentials/" + percentEncode(key);
    logout.headers.emplace_back(std::string(kSessionHeader), key);
    auto loggedOut = https.send(logout);
    if (!loggedOut) {
      notes.push_back(fmt::format("WSAPI logout failed: {}", loggedOut.error().message));
    } else if (loggedOut->status >= 300) {
      notes.push_back(fmt::format("WSAPI logout answered {}", wsapiErrorText(*loggedOut)));
    }

    if (!answer) return std::unexpected(answer.error());
    if (answer->status != 200) {
      return fail("hpe_3par.bad_output", fmt::format("{}: GET /api/v1/eventlog answered {}", who_,
                                                     wsapiErrorText(*answer)));
    }
    auto page = parseEventLog(answer->body);
    if (!page) {
      return fail(page.error().code,
                  fmt::format("{}: GET /api/v1/eventlog: {}", who_, page.error().message));
    }
    return page;
  }

  Settings settings_;
  std::string who_;
};

Result<std::unique_ptr<Collector>> create(const ArrayConfig& array) {
  auto settings = readSettings(array);
  if (!settings) return std::unexpected(settings.error());
  return std::make_unique<ThreeParCollector>(array, std::move(*settings));
}

Result<ZoneTable> zonesOf(const ArrayConfig& array) {
  auto zones = zonesWithOverrides(setting(array, "zone-abbreviations"));
  if (!zones) return fail("config", fmt::format("zone-abbreviations: {}", zones.error().message));
  return zones;
}

/// `pass-agent parse --family hpe_3par --source showalert FILE`: one event per block, as a
/// first sighting would report it (a Fixed alert as its recovery).
Result<std::vector<CollectedEvent>> parseShowAlertCapture(std::string_view text,
                                                          const ArrayConfig& array) {
  auto zones = zonesOf(array);
  if (!zones) return std::unexpected(zones.error());
  auto encoding = encodingSetting(array);
  if (!encoding) return std::unexpected(encoding.error());
  auto blocks = parseShowAlert(text, *zones, *encoding);
  if (!blocks) return std::unexpected(blocks.error());
  std::vector<CollectedEvent> events;
  for (const AlertBlock& block : *blocks) {
    CollectedEvent e = block.event;
    if (block.id.empty()) {
      e.id = unparsedId(e.raw);
    } else if (stateLetter(block.state) == 'f') {
      e.kind = "recovery";
      e.id = block.id + ":fixed";
    } else {
      e.id = block.id;
    }
    events.push_back(std::move(e));
  }
  return events;
}

/// `--source eventlog`: every member of one WSAPI /api/v1/eventlog page.
Result<std::vector<CollectedEvent>> parseEventLogCapture(std::string_view text,
                                                         const ArrayConfig&) {
  auto page = parseEventLog(text);
  if (!page) return std::unexpected(page.error());
  std::vector<CollectedEvent> events;
  for (auto& entry : page->entries) events.push_back(std::move(entry.event));
  return events;
}

}  // namespace

void registerCollector(CollectorRegistry& registry) {
  CollectorInfo info;
  info.family = kFamily;
  info.element = "hpe-3par";
  info.description =
      "An HPE 3PAR array (E/F/S/T/V-Class, 7000, 8000, 10000), watched through its CLI over SSH "
      "(`showalert -d -all`) and optionally its WSAPI event log.";
  info.settings = {
      AttributeDecl{{},
                    "address",
                    Type::kString,
                    true,
                    {},
                    "The array's management address (IP or host name)."},
      AttributeDecl{{},
                    "user",
                    Type::kString,
                    true,
                    {},
                    "The CLI / WSAPI user (read-only "
                    "browse rights are enough)."},
      AttributeDecl{{},
                    "password-file",
                    Type::kPath,
                    false,
                    {},
                    "A file whose first line is the user's password; needed for the WSAPI, and "
                    "for SSH unless key-file is set."},
      AttributeDecl{{},
                    "key-file",
                    Type::kPath,
                    false,
                    {},
                    "An unencrypted private key (OpenSSH or PEM) for the CLI over SSH; used "
                    "instead of the password when set."},
      AttributeDecl{{},
                    "source",
                    Type::kString,
                    false,
                    "ssh",
                    "What to read: ssh (the CLI's alert list, the default), wsapi (the WSAPI "
                    "event log's alert entries) or both."},
      AttributeDecl{{}, "ssh-port", Type::kUint, false, "22", "The CLI's SSH port."},
      AttributeDecl{{}, "wsapi-port", Type::kUint, false, "8080", "The WSAPI's HTTPS port."},
      AttributeDecl{{},
                    "timeout-seconds",
                    Type::kUint,
                    false,
                    "60",
                    "The whole run's budget for this array, and each request's timeout."},
      AttributeDecl{{},
                    "zone-abbreviations",
                    Type::kString,
                    false,
                    {},
                    "Time-zone abbreviations that showalert prints, added to or replacing the "
                    "built-in table, e.g. \"CST=+08:00,IST=+05:30\" (docs/supported-arrays.md)."},
      encodingAttribute(),
  };
  info.create = create;
  info.sources = {
      ParseSource{"showalert", "a captured `showalert -d` (or -d -all) output",
                  parseShowAlertCapture},
      ParseSource{"eventlog", "one WSAPI GET /api/v1/eventlog answer (JSON)", parseEventLogCapture},
  };
  registry.add(std::move(info));
}

}  // namespace pass::hpe_3par
