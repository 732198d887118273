// agent.xml: its one declaration (agentSchema), loading with semantic checks, and rendering.

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <pugixml.hpp>

#include "pass/collector.hpp"
#include "pass/config.hpp"

namespace pass {

namespace {

namespace fs = std::filesystem;
using config::attribute;
using config::AttributeDecl;
using config::ElementDecl;
using config::Findings;
using config::readConfigFile;
using config::resolvePath;
using config::Type;
using config::uintAttribute;

constexpr std::string_view kRoot = "pass-agent";
constexpr std::string_view kIdentity = "pass-agent/identity";
constexpr std::string_view kHome = "pass-agent/home";
constexpr std::string_view kEndpoint = "pass-agent/home/endpoint";
constexpr std::string_view kProxy = "pass-agent/home/proxy";
constexpr std::string_view kKeys = "pass-agent/keys";
constexpr std::string_view kHeartbeat = "pass-agent/heartbeat";
constexpr std::string_view kSpool = "pass-agent/spool";
constexpr std::string_view kState = "pass-agent/state";
constexpr std::string_view kArrays = "pass-agent/arrays";

constexpr std::uint64_t kSchemaVersion = 1;
constexpr std::uint64_t kMinTimeoutSeconds = 1;
constexpr std::uint64_t kMaxTimeoutSeconds = 3600;
constexpr std::uint64_t kMinHeartbeatMinutes = 5;
constexpr std::uint64_t kMaxHeartbeatMinutes = 1440;

constexpr std::string_view kDefaultSignKey = "agent-sign.key";
constexpr std::string_view kDefaultTlsKey = "agent-tls.key";
constexpr std::string_view kDefaultTlsCert = "agent-tls.crt";
constexpr std::string_view kDefaultHomeCa = "home-ca.crt";
constexpr std::string_view kDefaultHomeHpke = "home-hpke.pub";

// Order matters: the first element is the root, and the reference lists them in this order.
constexpr std::array kElements{
    ElementDecl{kRoot, 1, 1, "The agent's site configuration; one file per agent."},
    ElementDecl{kIdentity, 1, 1,
                "Who this agent is, as enrolled at the home. Written by enrollment; the home "
                "refuses envelopes whose id does not match the agent's client certificate."},
    ElementDecl{kHome, 1, 1, "How to reach the home server."},
    ElementDecl{kEndpoint, 1, 0,
                "A home endpoint. Listed in order of preference: each envelope goes to the first "
                "one that answers and fails over to the next when one cannot be reached."},
    ElementDecl{kProxy, 0, 1,
                "An HTTP proxy that tunnels TLS with CONNECT, for sites without a direct route. "
                "Without this element no proxy is used, whatever the environment "
                "(http_proxy, https_proxy, all_proxy) says."},
    ElementDecl{kKeys, 0, 1,
                "Key and certificate files of the agent's bundle. Relative paths are relative to "
                "the directory of agent.xml."},
    ElementDecl{kHeartbeat, 0, 1,
                "Heartbeats tell the home the agent is alive; a missing one opens a ticket."},
    ElementDecl{kSpool, 0, 1,
                "Bounds of the spool of sealed envelopes waiting for the home. When full, the "
                "oldest heartbeats are dropped; alerts never are."},
    ElementDecl{kState, 0, 1,
                "Where the agent keeps its durable state (cursors, sequence, spool)."},
    ElementDecl{kArrays, 0, 1,
                "The arrays this agent watches: one child element per array, named for its "
                "family. docs/supported-arrays.md says which models each family covers."},
};

constexpr std::array kAttributes{
    AttributeDecl{
        kRoot, "schema", Type::kUint, true, {}, "Version of this file's layout; must be 1."},
    AttributeDecl{
        kIdentity, "id", Type::kUuid, true, {}, "The agent's UUID, assigned at enrollment."},
    AttributeDecl{kIdentity, "customer", Type::kString, true, {}, "Customer name, as enrolled."},
    AttributeDecl{kIdentity, "site", Type::kString, true, {}, "Site name, as enrolled."},
    AttributeDecl{kIdentity,
                  "name",
                  Type::kString,
                  true,
                  {},
                  "This agent's name, e.g. the SVP or appliance host name."},
    AttributeDecl{kHome, "connect-timeout-seconds", Type::kUint, false, "10",
                  "Seconds to wait for a TCP and TLS connection to one endpoint (1 to 3600)."},
    AttributeDecl{kHome, "timeout-seconds", Type::kUint, false, "60",
                  "Seconds one delivery to one endpoint may take in total (1 to 3600)."},
    AttributeDecl{kEndpoint,
                  "url",
                  Type::kUrl,
                  true,
                  {},
                  "https://host:port of the home (the home listens on 9455); https only."},
    AttributeDecl{kProxy,
                  "url",
                  Type::kUrl,
                  true,
                  {},
                  "http://host:port of the proxy. TLS to the home runs end to end through the "
                  "tunnel, so the proxy sees nothing of the envelopes."},
    AttributeDecl{kKeys, "sign", Type::kPath, false, kDefaultSignKey,
                  "The agent's Ed25519 private key that signs envelopes."},
    AttributeDecl{kKeys, "tls-key", Type::kPath, false, kDefaultTlsKey,
                  "Private key of the agent's TLS client certificate."},
    AttributeDecl{kKeys, "tls-cert", Type::kPath, false, kDefaultTlsCert,
                  "The agent's TLS client certificate, issued by the home's CA."},
    AttributeDecl{kKeys, "home-ca", Type::kPath, false, kDefaultHomeCa,
                  "The home's CA certificate; the only trust anchor for the home's server "
                  "certificate (the system trust store is never used)."},
    AttributeDecl{kKeys, "home-hpke", Type::kPath, false, kDefaultHomeHpke,
                  "The home's X25519 public key that envelopes are sealed to."},
    AttributeDecl{kHeartbeat, "interval-minutes", Type::kUint, false, "240",
                  "Minutes between heartbeats (5 to 1440); 240 is 6 per day."},
    AttributeDecl{kSpool, "max-envelopes", Type::kUint, false, "10000",
                  "At most this many envelopes wait in the spool (at least 1)."},
    AttributeDecl{kSpool, "max-bytes", Type::kUint, false, "67108864",
                  "At most this many bytes of envelopes wait in the spool (at least 1; "
                  "default 64 MiB)."},
    AttributeDecl{kState, "dir", Type::kPath, false, "state",
                  "The state directory; relative paths are relative to the directory of "
                  "agent.xml."},
};

/// The fixed tables above plus one element per built-in collector under <arrays>, with the
/// attributes every array has and the collector's own.
struct AgentSchema {
  std::deque<std::string> paths;  // stable storage for the composed element paths
  std::vector<ElementDecl> elements;
  std::vector<AttributeDecl> attributes;
  config::Schema schema;
};

const AgentSchema& agentSchemaTables() {
  static const AgentSchema kSchema = [] {
    AgentSchema s;
    s.elements.assign(kElements.begin(), kElements.end());
    s.attributes.assign(kAttributes.begin(), kAttributes.end());
    for (const CollectorInfo& c : builtinCollectors().all()) {
      const std::string& path = s.paths.emplace_back(fmt::format("{}/{}", kArrays, c.element));
      s.elements.push_back(ElementDecl{path, 0, 0, c.description});
      s.attributes.push_back(AttributeDecl{path,
                                           "serial",
                                           Type::kString,
                                           true,
                                           {},
                                           "The array's serial number, as the array reports it; "
                                           "unique per family in this file. It names files: 1 "
                                           "to 64 letters, digits, '.', '-' or '_', not \".\" "
                                           "or \"..\"."});
      s.attributes.push_back(AttributeDecl{
          path, "model", Type::kString, false, {}, "The model, as on the new-customer form."});
      s.attributes.push_back(AttributeDecl{path,
                                           "name",
                                           Type::kString,
                                           false,
                                           {},
                                           "A name for people, shown in tickets and messages."});
      for (AttributeDecl decl : c.settings) {
        decl.element = path;
        s.attributes.push_back(decl);
      }
    }
    s.schema = config::Schema{s.elements, s.attributes};
    return s;
  }();
  return kSchema;
}

/// The attribute's value, or the schema default when the element is absent.
std::string_view valueOr(const config::Node* node, std::string_view element,
                         std::string_view name) {
  if (node != nullptr) return attribute(*node, name);
  for (const auto& decl : kAttributes) {
    if (decl.element == element && decl.name == name) return decl.defaultValue;
  }
  return {};
}

}  // namespace

const config::Schema& agentSchema() { return agentSchemaTables().schema; }

Result<AgentConfig> loadAgentConfig(const std::filesystem::path& file) {
  auto text = readConfigFile(file);
  if (!text) return std::unexpected(text.error());
  auto parsed = config::parse(agentSchema(), *text, file.string());
  if (!parsed) return std::unexpected(parsed.error());
  const config::Document& doc = *parsed;

  std::error_code ec;
  fs::path absolute = fs::absolute(file, ec);
  fs::path base = (ec ? file : absolute).parent_path();

  Findings findings(file.string());
  AgentConfig cfg;
  cfg.file = file;

  const config::Node& root = *doc.first(kRoot);
  if (uintAttribute(root, "schema") != kSchemaVersion) {
    findings.add(root, "schema",
                 fmt::format("must be {} (the layout this agent understands), got {}",
                             kSchemaVersion, attribute(root, "schema")));
  }

  const config::Node& identity = *doc.first(kIdentity);
  cfg.agentId = parseUuid(attribute(identity, "id")).value_or(AgentId{});
  cfg.customer = attribute(identity, "customer");
  cfg.site = attribute(identity, "site");
  cfg.name = attribute(identity, "name");

  const config::Node& home = *doc.first(kHome);
  findings.checkRange(home, "connect-timeout-seconds", kMinTimeoutSeconds, kMaxTimeoutSeconds);
  findings.checkRange(home, "timeout-seconds", kMinTimeoutSeconds, kMaxTimeoutSeconds);
  cfg.connectTimeout = std::chrono::seconds(
      std::min(uintAttribute(home, "connect-timeout-seconds"), kMaxTimeoutSeconds));
  cfg.totalTimeout =
      std::chrono::seconds(std::min(uintAttribute(home, "timeout-seconds"), kMaxTimeoutSeconds));
  for (const config::Node* endpoint : doc.all(kEndpoint)) {
    const std::string& url = attribute(*endpoint, "url");
    if (!url.starts_with("https://")) {
      findings.add(*endpoint, "url",
                   fmt::format("must start with https:// (the home is reached over TLS only), "
                               "got \"{}\"",
                               url));
    }
    cfg.endpoints.push_back(url);
  }
  if (const config::Node* proxy = doc.first(kProxy)) cfg.proxy = attribute(*proxy, "url");

  const config::Node* keys = doc.first(kKeys);
  cfg.signKey = resolvePath(base, valueOr(keys, kKeys, "sign"));
  cfg.tlsKey = resolvePath(base, valueOr(keys, kKeys, "tls-key"));
  cfg.tlsCert = resolvePath(base, valueOr(keys, kKeys, "tls-cert"));
  cfg.homeCa = resolvePath(base, valueOr(keys, kKeys, "home-ca"));
  cfg.homeHpke = resolvePath(base, valueOr(keys, kKeys, "home-hpke"));

  if (const config::Node* heartbeat = doc.first(kHeartbeat)) {
    findings.checkRange(*heartbeat, "interval-minutes", kMinHeartbeatMinutes, kMaxHeartbeatMinutes);
    cfg.heartbeatInterval = std::chrono::minutes(
        std::min(uintAttribute(*heartbeat, "interval-minutes"), kMaxHeartbeatMinutes));
  }

  if (const config::Node* spool = doc.first(kSpool)) {
    constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
    findings.checkRange(*spool, "max-envelopes", 1, kMax);
    findings.checkRange(*spool, "max-bytes", 1, kMax);
    cfg.spool.maxEnvelopes = uintAttribute(*spool, "max-envelopes");
    cfg.spool.maxBytes = uintAttribute(*spool, "max-bytes");
  }

  cfg.stateDir = resolvePath(base, valueOr(doc.first(kState), kState, "dir"));

  const std::string arrayPrefix = fmt::format("{}/", kArrays);
  for (const config::Node& node : doc.nodes) {
    if (!node.path.starts_with(arrayPrefix)) continue;
    const CollectorInfo* collector =
        builtinCollectors().findByElement(std::string_view(node.path).substr(arrayPrefix.size()));
    if (collector == nullptr) continue;  // parse() refuses elements no collector declared
    ArrayConfig array;
    array.family = collector->family;
    array.serial = attribute(node, "serial");
    array.model = attribute(node, "model");
    array.name = attribute(node, "name");
    array.settings = node.attributes;
    array.configDir = base;
    array.where = fmt::format("{}:{}", file.string(), node.line);
    for (const ArrayConfig& earlier : cfg.arrays) {
      if (earlier.family == array.family && earlier.serial == array.serial) {
        findings.add(node, "serial",
                     fmt::format("{} {} is already declared at {}", array.family, array.serial,
                                 earlier.where));
      }
    }
    if (!config::safeFileName(array.serial)) {
      findings.add(node, "serial",
                   fmt::format("\"{}\" is not a serial number: {} (it names the array's "
                               "cursor and pin files)",
                               array.serial, config::kSafeFileNameRule));
    }
    cfg.arrays.push_back(std::move(array));
  }

  if (auto status = findings.status(); !status) return std::unexpected(status.error());
  return cfg;
}

std::string renderAgentConfig(const AgentConfig& cfg) {
  // Bundle files are referenced by name so the bundle can be moved as a whole.
  auto fileName = [](const fs::path& p, std::string_view fallback) {
    std::string name = p.filename().string();
    return name.empty() ? std::string(fallback) : name;
  };
  auto number = [](auto value) { return std::to_string(value); };

  pugi::xml_document doc;
  auto declaration = doc.append_child(pugi::node_declaration);
  declaration.append_attribute("version") = "1.0";
  declaration.append_attribute("encoding") = "UTF-8";
  doc.append_child(pugi::node_comment)
      .set_value(
          " PASS agent configuration (agent.xml): who this agent is, how it reaches its home,\n"
          "     and the key files of its bundle (relative to this file's directory).\n"
          "     Every element and attribute is described in docs/configuration.md. ");

  auto root = doc.append_child(kRoot.data());
  root.append_attribute("schema") = number(kSchemaVersion).c_str();

  auto identity = root.append_child("identity");
  identity.append_attribute("id") = formatUuid(cfg.agentId).c_str();
  identity.append_attribute("customer") = cfg.customer.c_str();
  identity.append_attribute("site") = cfg.site.c_str();
  identity.append_attribute("name") = cfg.name.c_str();

  auto home = root.append_child("home");
  home.append_attribute("connect-timeout-seconds") = number(cfg.connectTimeout.count()).c_str();
  home.append_attribute("timeout-seconds") = number(cfg.totalTimeout.count()).c_str();
  for (const auto& url : cfg.endpoints) {
    home.append_child("endpoint").append_attribute("url") = url.c_str();
  }
  if (!cfg.proxy.empty()) home.append_child("proxy").append_attribute("url") = cfg.proxy.c_str();

  auto keys = root.append_child("keys");
  keys.append_attribute("sign") = fileName(cfg.signKey, kDefaultSignKey).c_str();
  keys.append_attribute("tls-key") = fileName(cfg.tlsKey, kDefaultTlsKey).c_str();
  keys.append_attribute("tls-cert") = fileName(cfg.tlsCert, kDefaultTlsCert).c_str();
  keys.append_attribute("home-ca") = fileName(cfg.homeCa, kDefaultHomeCa).c_str();
  keys.append_attribute("home-hpke") = fileName(cfg.homeHpke, kDefaultHomeHpke).c_str();

  root.append_child("heartbeat").append_attribute("interval-minutes") =
      number(cfg.heartbeatInterval.count()).c_str();

  auto spool = root.append_child("spool");
  spool.append_attribute("max-envelopes") = number(cfg.spool.maxEnvelopes).c_str();
  spool.append_attribute("max-bytes") = number(cfg.spool.maxBytes).c_str();

  if (!cfg.arrays.empty()) {
    auto arrays = root.append_child("arrays");
    for (const ArrayConfig& array : cfg.arrays) {
      const CollectorInfo* collector = builtinCollectors().find(array.family);
      if (collector == nullptr) continue;  // not in this build: nothing could load it either
      auto element = arrays.append_child(std::string(collector->element).c_str());
      for (const auto& [name, value] : array.settings) {
        element.append_attribute(name.c_str()) = value.c_str();
      }
    }
  }

  std::ostringstream out;
  doc.save(out, "  ", pugi::format_default, pugi::encoding_utf8);
  return out.str();
}

}  // namespace pass
