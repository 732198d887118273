// Schema-driven validation of XML configuration. pugixml is used only in this file and in
// agent_config.cpp (which renders agent.xml); nothing outside sees a pugi type.

#include "pass/config.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <pugixml.hpp>

#include "platform/fs.hpp"

namespace pass::config {

std::string_view toString(Type t) {
  switch (t) {
    case Type::kString:
      return "string";
    case Type::kUint:
      return "uint";
    case Type::kBool:
      return "bool";
    case Type::kUrl:
      return "url";
    case Type::kUuid:
      return "uuid";
    case Type::kPath:
      return "path";
  }
  return "unknown";
}

std::vector<const Node*> Document::all(std::string_view path) const {
  std::vector<const Node*> out;
  for (const auto& node : nodes) {
    if (node.path == path) out.push_back(&node);
  }
  return out;
}

const Node* Document::first(std::string_view path) const {
  for (const auto& node : nodes) {
    if (node.path == path) return &node;
  }
  return nullptr;
}

namespace {

constexpr std::size_t kMaxQuotedValue = 80;

/// Maps byte offsets of the original text to 1-based line numbers.
class LineIndex {
 public:
  explicit LineIndex(std::string_view text) {
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\n') newlines_.push_back(i);
    }
  }

  unsigned lineOf(std::ptrdiff_t offset) const {
    // offset_debug() is -1 only for nodes that did not come from the buffer; line 0 says
    // "unknown" rather than pointing somewhere wrong.
    if (offset < 0) return 0;
    auto it =
        std::lower_bound(newlines_.begin(), newlines_.end(), static_cast<std::size_t>(offset));
    return static_cast<unsigned>(it - newlines_.begin()) + 1;
  }

 private:
  std::vector<std::size_t> newlines_;
};

std::string quoted(std::string_view value) {
  std::string shown(value.substr(0, kMaxQuotedValue));
  if (value.size() > kMaxQuotedValue) shown += "...";
  return fmt::format("\"{}\"", shown);
}

std::string_view parentOf(std::string_view path) {
  auto slash = path.rfind('/');
  if (slash == std::string_view::npos) return {};
  return path.substr(0, slash);
}

std::string_view leafOf(std::string_view path) {
  auto slash = path.rfind('/');
  if (slash == std::string_view::npos) return path;
  return path.substr(slash + 1);
}

bool isDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// "https://host[:port][/...]" or "http://..." with a non-empty host and a numeric port.
bool isUrl(std::string_view value) {
  std::string_view rest;
  if (value.starts_with("https://")) {
    rest = value.substr(8);
  } else if (value.starts_with("http://")) {
    rest = value.substr(7);
  } else {
    return false;
  }
  auto authority = rest.substr(0, rest.find_first_of("/?#"));
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority = authority.substr(at + 1);
  }
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return false;
    host = authority.substr(1, close - 1);
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) return false;
      port = after.substr(1);
      if (!isDigits(port)) return false;
    }
  } else if (auto colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (!isDigits(port)) return false;
  }
  if (host.empty()) return false;
  return std::none_of(host.begin(), host.end(),
                      [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

/// Why `value` is not a valid `decl.type`, or nullopt when it is.
std::optional<std::string> typeProblem(const AttributeDecl& decl, std::string_view value) {
  switch (decl.type) {
    case Type::kUint: {
      if (!isDigits(value)) {
        return fmt::format("expected uint (decimal digits only), got {}", quoted(value));
      }
      std::uint64_t parsed = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), parsed);
      if (ec != std::errc{} || end != value.data() + value.size()) {
        return fmt::format("expected uint (at most 18446744073709551615), got {}", quoted(value));
      }
      return std::nullopt;
    }
    case Type::kBool:
      if (value == "true" || value == "false") return std::nullopt;
      return fmt::format("expected bool (true or false), got {}", quoted(value));
    case Type::kUrl:
      if (isUrl(value)) return std::nullopt;
      return fmt::format("expected url (https://host[:port] or http://host[:port]), got {}",
                         quoted(value));
    case Type::kUuid: {
      if (parseUuid(value)) return std::nullopt;
      return fmt::format("expected uuid (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hex), got {}",
                         quoted(value));
    }
    case Type::kString:
    case Type::kPath:
      // A declared default of "" (non-null but empty) is how a schema says "may be empty";
      // a default-constructed string_view means "no default".
      if (!value.empty() || (decl.defaultValue.data() != nullptr && decl.defaultValue.empty())) {
        return std::nullopt;
      }
      return fmt::format("expected a non-empty {}", toString(decl.type));
  }
  return std::nullopt;
}

std::string occursText(const ElementDecl& decl) {
  if (decl.maxOccurs == 0) return fmt::format("{}..unbounded", decl.minOccurs);
  if (decl.minOccurs == decl.maxOccurs) return fmt::format("{}", decl.minOccurs);
  return fmt::format("{}..{}", decl.minOccurs, decl.maxOccurs);
}

class Validator {
 public:
  Validator(const Schema& schema, std::string_view text, std::string_view file)
      : schema_(schema), file_(file), lines_(text) {
    doc_.file = std::string(file);
  }

  Result<Document> run(std::string_view text) {
    pugi::xml_document xml;
    // parse_default drops comments, the declaration and whitespace-only text; offset_debug()
    // stays valid because the tree is never modified. encoding_utf8 keeps offsets byte-exact.
    auto loaded =
        xml.load_buffer(text.data(), text.size(), pugi::parse_default, pugi::encoding_utf8);
    if (!loaded) {
      return fail("config.syntax", fmt::format("{}:{}: malformed XML: {}", file_,
                                               lines_.lineOf(loaded.offset), loaded.description()));
    }
    if (schema_.elements.empty()) {
      return fail("config.schema", fmt::format("{}: the schema declares no elements", file_));
    }
    const ElementDecl& rootDecl = schema_.elements.front();
    bool seenRoot = false;
    for (auto child : xml.children()) {
      if (child.type() != pugi::node_element) {
        textNode(child, "document");
        continue;
      }
      unsigned line = lines_.lineOf(child.offset_debug());
      if (child.name() != rootDecl.path) {
        report(line, "config.unknown_element", child.name(),
               fmt::format("unknown root element (expected <{}>)", rootDecl.path));
        continue;
      }
      if (seenRoot) {
        report(line, "config.occurs", child.name(), "only one root element is allowed");
        continue;
      }
      seenRoot = true;
      element(child, std::string(rootDecl.path));
    }
    if (first_) return std::unexpected(first_->error);
    return std::move(doc_);
  }

 private:
  struct Finding {
    unsigned line = 0;
    Error error;
  };

  /// Keeps the finding with the smallest line; on a tie, the one reported first.
  void report(unsigned line, std::string_view code, std::string_view key, std::string_view what) {
    if (first_ && first_->line <= line) return;
    first_ = Finding{
        line, Error{std::string(code), fmt::format("{}:{}: {}: {}", file_, line, key, what)}};
  }

  const ElementDecl* findElement(std::string_view path) const {
    for (const auto& decl : schema_.elements) {
      if (decl.path == path) return &decl;
    }
    return nullptr;
  }

  const AttributeDecl* findAttribute(std::string_view element, std::string_view name) const {
    for (const auto& decl : schema_.attributes) {
      if (decl.element == element && decl.name == name) return &decl;
    }
    return nullptr;
  }

  std::string allowedAttributes(std::string_view element) const {
    std::string out;
    for (const auto& decl : schema_.attributes) {
      if (decl.element != element) continue;
      if (!out.empty()) out += ", ";
      out += decl.name;
    }
    return out.empty() ? "none" : out;
  }

  std::string allowedChildren(std::string_view element) const {
    std::string out;
    for (const auto& decl : schema_.elements) {
      if (parentOf(decl.path) != element) continue;
      if (!out.empty()) out += ", ";
      out += fmt::format("<{}>", leafOf(decl.path));
    }
    return out.empty() ? "none" : out;
  }

  void textNode(const pugi::xml_node& node, std::string_view where) {
    if (node.type() != pugi::node_pcdata && node.type() != pugi::node_cdata) return;
    // The text may start with whitespace and line breaks; point at its first visible line.
    std::string_view value = node.value();
    auto visible = value.find_first_not_of(" \t\r\n");
    auto breaks = std::count(
        value.begin(), value.begin() + static_cast<std::ptrdiff_t>(std::min(visible, value.size())),
        '\n');
    unsigned line = lines_.lineOf(node.offset_debug()) + static_cast<unsigned>(breaks);
    report(line, "config.syntax", where,
           fmt::format("text content is not allowed (settings are attributes), found {}",
                       quoted(value.substr(std::min(visible, value.size())))));
  }

  void element(const pugi::xml_node& xml, std::string path) {
    Node node;
    node.path = path;
    node.line = lines_.lineOf(xml.offset_debug());

    std::set<std::string, std::less<>> seen;
    for (auto attr : xml.attributes()) {
      std::string_view name = attr.name();
      std::string key = fmt::format("{}/@{}", path, name);
      if (!seen.insert(std::string(name)).second) {
        report(node.line, "config.syntax", key, "attribute appears twice");
        continue;
      }
      const AttributeDecl* decl = findAttribute(path, name);
      if (decl == nullptr) {
        report(node.line, "config.unknown_attribute", key,
               fmt::format("unknown attribute (allowed: {})", allowedAttributes(path)));
        continue;
      }
      if (auto problem = typeProblem(*decl, attr.value())) {
        report(node.line, "config.type", key, *problem);
        continue;
      }
      node.attributes.emplace(std::string(name), attr.value());
    }
    for (const auto& decl : schema_.attributes) {
      if (decl.element != path || seen.contains(decl.name)) continue;
      if (decl.required) {
        report(node.line, "config.missing", fmt::format("{}/@{}", path, decl.name),
               fmt::format("required attribute is missing (type {})", toString(decl.type)));
        continue;
      }
      if (decl.defaultValue.data() != nullptr) {
        node.attributes.emplace(std::string(decl.name), std::string(decl.defaultValue));
      }
    }
    doc_.nodes.push_back(std::move(node));
    unsigned line = doc_.nodes.back().line;

    std::map<std::string, unsigned, std::less<>> counts;
    for (auto child : xml.children()) {
      if (child.type() != pugi::node_element) {
        textNode(child, path);
        continue;
      }
      std::string childPath = fmt::format("{}/{}", path, child.name());
      const ElementDecl* decl = findElement(childPath);
      if (decl == nullptr) {
        report(lines_.lineOf(child.offset_debug()), "config.unknown_element", childPath,
               fmt::format("unknown element (allowed in <{}>: {})", leafOf(path),
                           allowedChildren(path)));
        continue;
      }
      unsigned count = ++counts[childPath];
      if (decl->maxOccurs != 0 && count > decl->maxOccurs) {
        report(lines_.lineOf(child.offset_debug()), "config.occurs", childPath,
               fmt::format("too many <{}> elements (occurs {})", child.name(), occursText(*decl)));
      }
      element(child, std::move(childPath));
    }
    for (const auto& decl : schema_.elements) {
      if (parentOf(decl.path) != path) continue;
      auto it = counts.find(decl.path);
      unsigned count = it == counts.end() ? 0 : it->second;
      if (count < decl.minOccurs) {
        report(
            line, "config.occurs", decl.path,
            fmt::format("<{}> needs at least {} <{}> element(s), found {} (occurs {})",
                        leafOf(path), decl.minOccurs, leafOf(decl.path), count, occursText(decl)));
      }
    }
  }

  const Schema& schema_;
  std::string_view file_;
  LineIndex lines_;
  Document doc_;
  std::optional<Finding> first_;
};

std::string escapeCell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

std::string defaultText(const AttributeDecl& decl) {
  if (decl.required) return "required";
  if (decl.defaultValue.data() == nullptr) return "optional";
  if (decl.defaultValue.empty()) return "default empty";
  return fmt::format("default `{}`", decl.defaultValue);
}

}  // namespace

Result<Document> parse(const Schema& schema, std::string_view text, std::string_view file) {
  Validator validator(schema, text, file);
  return validator.run(text);
}

std::string markdownReference(const Schema& schema, std::string_view title) {
  std::string out = fmt::format("## {}\n", title);
  for (const auto& element : schema.elements) {
    out += fmt::format("\n### `<{}>`\n\n", leafOf(element.path));
    out += "| element | occurs | description |\n| --- | --- | --- |\n";
    out += fmt::format("| `{}` | {} | {} |\n\n", element.path, occursText(element),
                       escapeCell(element.description));
    bool any = false;
    for (const auto& attr : schema.attributes) {
      if (attr.element != element.path) continue;
      if (!any) {
        out += "| attribute | type | required / default | description |\n";
        out += "| --- | --- | --- | --- |\n";
        any = true;
      }
      out += fmt::format("| `{}` | {} | {} | {} |\n", attr.name, toString(attr.type),
                         defaultText(attr), escapeCell(attr.description));
    }
    if (!any) out += "No attributes.\n";
  }
  return out;
}

void Findings::add(const Node& node, std::string_view attribute, std::string what) {
  if (first_ && first_->line <= node.line) return;
  first_ = Finding{node.line,
                   fmt::format("{}:{}: {}/@{}: {}", file_, node.line, node.path, attribute, what)};
}

void Findings::checkRange(const Node& node, std::string_view attribute, std::uint64_t min,
                          std::uint64_t max) {
  std::uint64_t value = uintAttribute(node, attribute);
  if (value < min || value > max) {
    add(node, attribute, fmt::format("must be between {} and {}, got {}", min, max, value));
  }
}

Status Findings::status() const {
  if (first_) return fail("config.value", first_->message);
  return {};
}

const std::string& attribute(const Node& node, std::string_view name) {
  static const std::string kEmpty;
  auto it = node.attributes.find(name);
  return it == node.attributes.end() ? kEmpty : it->second;
}

std::uint64_t uintAttribute(const Node& node, std::string_view name) {
  const std::string& text = attribute(node, name);
  std::uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

std::filesystem::path resolvePath(const std::filesystem::path& base, std::string_view value) {
  std::filesystem::path p = platform::pathFromUtf8(value);
  if (p.is_absolute()) return p;
  return (base / p).lexically_normal();
}

bool safeFileName(std::string_view name) {
  return !name.empty() && name.size() <= 64 && name != "." && name != ".." &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_';
         });
}

Result<std::filesystem::path> confinedPath(std::string_view value) {
  auto refuse = [&](std::string_view why) {
    return fail("config.value", fmt::format("\"{}\" {}: name a file in the form's own folder, "
                                            "e.g. secrets/3par.txt",
                                            value, why));
  };
  if (value.empty()) return refuse("is empty");
  if (value.find('\0') != std::string_view::npos) return refuse("holds a NUL byte");
  std::filesystem::path p = platform::pathFromUtf8(value);
  // "C:x" is relative but has a drive, and "\\x" a root directory on Windows: only a bare
  // relative path stays inside the folder.
  if (p.is_absolute() || p.has_root_name() || p.has_root_directory() || value.starts_with('/') ||
      value.starts_with('\\')) {
    return refuse("is an absolute path");
  }
  for (const auto& part : p) {
    if (part == "..") return refuse("leaves the folder with \"..\"");
  }
  std::filesystem::path normal = p.lexically_normal();
  if (normal.empty() || normal == "." || !normal.has_filename()) return refuse("names no file");
  return normal;
}

Result<std::string> readConfigFile(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return fail("config.io", fmt::format("{}: cannot open the configuration file: {}",
                                         platform::displayPath(file), std::strerror(errno)));
  }
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) {
    return fail("config.io",
                fmt::format("{}: cannot read the configuration file", platform::displayPath(file)));
  }
  return text;
}

}  // namespace pass::config
