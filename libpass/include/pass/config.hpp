#pragma once
/// Declarative XML configuration (pugixml). Every element and attribute is declared once in a
/// schema table (type, default, description); that table drives parsing, validation and the
/// generated reference in docs/configuration.md. Unknown, mistyped or missing keys are errors
/// naming file, line and key.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pass/envelope.hpp"
#include "pass/result.hpp"
#include "pass/spool.hpp"

namespace pass::config {

enum class Type { kString, kUint, kBool, kUrl, kUuid, kPath };
std::string_view toString(Type t);

struct ElementDecl {
  std::string_view path;  // "pass-agent/home/endpoint"
  unsigned minOccurs = 0;
  unsigned maxOccurs = 1;  // 0 = unbounded
  std::string_view description;
};

struct AttributeDecl {
  std::string_view element;  // element path as in ElementDecl
  std::string_view name;
  Type type = Type::kString;
  bool required = false;
  std::string_view defaultValue;  // used when not required and absent
  std::string_view description;
};

struct Schema {
  std::span<const ElementDecl> elements;
  std::span<const AttributeDecl> attributes;
};

/// One validated element: its attributes with defaults filled in, and where it stood.
struct Node {
  std::string path;
  unsigned line = 0;
  std::map<std::string, std::string, std::less<>> attributes;
};

/// A validated document: every element in document order.
struct Document {
  std::string file;
  std::vector<Node> nodes;
  std::vector<const Node*> all(std::string_view path) const;
  const Node* first(std::string_view path) const;
};

/// Parses and validates `text`; errors read "FILE:LINE: KEY: what is wrong" with code
/// "config.syntax", "config.unknown_element", "config.unknown_attribute", "config.missing",
/// "config.type" or "config.occurs".
Result<Document> parse(const Schema& schema, std::string_view text, std::string_view file);

/// Markdown reference of a schema (one table row per attribute).
std::string markdownReference(const Schema& schema, std::string_view title);

/// Semantic checks after parse(): the earliest finding by line is reported, as parse() does,
/// as "FILE:LINE: PATH/@ATTRIBUTE: what" with code "config.value".
class Findings {
 public:
  explicit Findings(std::string file) : file_(std::move(file)) {}
  void add(const Node& node, std::string_view attribute, std::string what);
  /// A finding unless the kUint attribute lies in [min, max].
  void checkRange(const Node& node, std::string_view attribute, std::uint64_t min,
                  std::uint64_t max);
  Status status() const;

 private:
  struct Finding {
    unsigned line = 0;
    std::string message;
  };
  std::string file_;
  std::optional<Finding> first_;
};

/// A validated node's attribute (parse() filled in defaults); empty when it has none.
const std::string& attribute(const Node& node, std::string_view name);
/// A kUint attribute's value (parse() checked the syntax).
std::uint64_t uintAttribute(const Node& node, std::string_view name);
/// `value` as a path: absolute as is, relative against `base`.
std::filesystem::path resolvePath(const std::filesystem::path& base, std::string_view value);
/// The whole file; "config.io" errors name the file and the reason.
Result<std::string> readConfigFile(const std::filesystem::path& file);

/// The rule for a value that becomes a file name (an array's serial names its cursor, pin and
/// password files): 1 to 64 of A-Z a-z 0-9 '.' '-' '_', and not "." or "..".
bool safeFileName(std::string_view name);
/// safeFileName's rule in words, for messages.
inline constexpr std::string_view kSafeFileNameRule =
    "1 to 64 letters, digits, '.', '-' or '_', not \".\" or \"..\"";

/// A path that an untrusted file (a customer's form) names, confined to that file's folder:
/// relative, without a root or drive, without ".." and not empty. The result is lexically
/// normal and relative; the error ("config.value") says which rule `value` breaks, for the
/// caller to prefix with file, line and field. Symbolic links are checked when the file is
/// opened (platform::readFileBeneath).
Result<std::filesystem::path> confinedPath(std::string_view value);

}  // namespace pass::config

namespace pass {

/// One array as agent.xml declares it: `<arrays><hitachi-svp serial=... .../></arrays>`.
struct ArrayConfig {
  std::string family;  // "hitachi_svp", ...
  std::string serial;
  std::string model;
  std::string name;
  /// Every attribute of the array's element, validated and with defaults filled in.
  std::map<std::string, std::string, std::less<>> settings;
  std::filesystem::path configDir;  // relative paths in settings are relative to it
  std::string where;                // "agent.xml:12", for messages
  /// "<family>-<serial>": names the array's cursor file and its status.
  std::string key() const { return family + "-" + serial; }
};

/// The agent's site configuration (agent.xml), with relative paths resolved against the
/// directory of the file.
struct AgentConfig {
  std::filesystem::path file;
  AgentId agentId{};
  std::string customer;
  std::string site;
  std::string name;
  std::vector<std::string> endpoints;
  std::string proxy;
  std::chrono::seconds connectTimeout{10};
  std::chrono::seconds totalTimeout{60};
  std::filesystem::path signKey;   // agent-sign.key
  std::filesystem::path tlsKey;    // agent-tls.key
  std::filesystem::path tlsCert;   // agent-tls.crt
  std::filesystem::path homeCa;    // home-ca.crt
  std::filesystem::path homeHpke;  // home-hpke.pub
  std::chrono::minutes heartbeatInterval{240};
  SpoolLimits spool;
  std::filesystem::path stateDir;
  std::vector<ArrayConfig> arrays;
};

/// The schema of agent.xml.
const config::Schema& agentSchema();

/// Loads and validates agent.xml. Error codes "config.*" (see config::parse) and "config.io".
Result<AgentConfig> loadAgentConfig(const std::filesystem::path& file);

/// Writes agent.xml text for a bundle; key paths are written relative (file names only) and
/// the state directory is omitted (default). Round-trips through loadAgentConfig.
std::string renderAgentConfig(const AgentConfig& cfg);

}  // namespace pass
