#include <doctest/doctest.h>

#ifndef _WIN32
#include <sys/stat.h>
#endif

#include <array>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "pass/config.hpp"
#include "platform/fs.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace pass;

namespace {

constexpr std::string_view kUuid = "123e4567-e89b-42d3-a456-426614174000";

using pass::test::TempDir;

fs::path writeFile(const fs::path& dir, const std::string& name, std::string_view text) {
  fs::path file = dir / name;
  std::ofstream out(file, std::ios::binary);
  out << text;
  return file;
}

[[maybe_unused]] std::string readText(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// A valid agent.xml; line numbers matter to the error tests below:
/// 1 declaration, 2 root, 3 identity, 4 home, 5 endpoint, 6 </home>, 7 </pass-agent>.
std::string minimalAgentXml() {
  return std::string(
             "<?xml version=\"1.0\"?>\n"
             "<pass-agent schema=\"1\">\n"
             "  <identity id=\"") +
         std::string(kUuid) +
         "\" customer=\"ACME\" site=\"Berlin\" name=\"svp-01\"/>\n"
         "  <home>\n"
         "    <endpoint url=\"https://home.example:9455\"/>\n"
         "  </home>\n"
         "</pass-agent>\n";
}

/// Replaces the first occurrence of `from` in `text`; the test fails if it is absent.
std::string replaced(std::string text, std::string_view from, std::string_view to) {
  auto at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, "fixture lacks: ", from);
  text.replace(at, from.size(), to);
  return text;
}

Error loadError(const TempDir& dir, std::string_view text) {
  auto file = writeFile(dir.path(), "agent.xml", text);
  auto cfg = loadAgentConfig(file);
  REQUIRE_FALSE(cfg.has_value());
  return cfg.error();
}

std::string prefix(const TempDir& dir, unsigned line) {
  return fmt::format("{}:{}: ", (dir.path() / "agent.xml").string(), line);
}

}  // namespace

TEST_CASE("a minimal agent.xml loads with every default filled in") {
  TempDir dir;
  auto file = writeFile(dir.path(), "agent.xml", minimalAgentXml());
  auto cfg = loadAgentConfig(file);
  REQUIRE_MESSAGE(cfg.has_value(), cfg.error().message);
  CHECK(cfg->file == file);
  CHECK(formatUuid(cfg->agentId) == kUuid);
  CHECK(cfg->customer == "ACME");
  CHECK(cfg->site == "Berlin");
  CHECK(cfg->name == "svp-01");
  CHECK(cfg->endpoints == std::vector<std::string>{"https://home.example:9455"});
  CHECK(cfg->proxy.empty());
  CHECK(cfg->connectTimeout == std::chrono::seconds(10));
  CHECK(cfg->totalTimeout == std::chrono::seconds(60));
  CHECK(cfg->signKey == dir.path() / "agent-sign.key");
  CHECK(cfg->tlsKey == dir.path() / "agent-tls.key");
  CHECK(cfg->tlsCert == dir.path() / "agent-tls.crt");
  CHECK(cfg->homeCa == dir.path() / "home-ca.crt");
  CHECK(cfg->homeHpke == dir.path() / "home-hpke.pub");
  CHECK(cfg->heartbeatInterval == std::chrono::minutes(240));
  CHECK(cfg->spool.maxEnvelopes == 10000);
  CHECK(cfg->spool.maxBytes == 67108864);
  CHECK(cfg->stateDir == dir.path() / "state");
}

TEST_CASE("a full agent.xml keeps endpoint order, proxy, absolute and relative paths") {
  TempDir dir;
  std::string text = std::string(
                         "<pass-agent schema=\"1\">\n"
                         "  <!-- comments are fine -->\n"
                         "  <identity id=\"") +
                     std::string(kUuid) +
                     "\" customer=\"C\" site=\"S\" name=\"N\"/>\n"
                     "  <home connect-timeout-seconds=\"3\" timeout-seconds=\"30\">\n"
                     "    <endpoint url=\"https://b.example:9455\"/>\n"
                     "    <endpoint url=\"https://a.example:9455/\"/>\n"
                     "    <proxy url=\"http://proxy.example:3128\"/>\n"
                     "  </home>\n"
                     "  <keys sign=\"/etc/pass/sign.key\" home-ca=\"ca/home.crt\"/>\n"
                     "  <heartbeat interval-minutes=\"60\"/>\n"
                     "  <spool max-envelopes=\"5\" max-bytes=\"1048576\"/>\n"
                     "  <state dir=\"/var/lib/pass\"/>\n"
                     "</pass-agent>\n";
  auto cfg = loadAgentConfig(writeFile(dir.path(), "agent.xml", text));
  REQUIRE_MESSAGE(cfg.has_value(), cfg.error().message);
  CHECK(cfg->endpoints ==
        std::vector<std::string>{"https://b.example:9455", "https://a.example:9455/"});
  CHECK(cfg->proxy == "http://proxy.example:3128");
  CHECK(cfg->connectTimeout == std::chrono::seconds(3));
  CHECK(cfg->totalTimeout == std::chrono::seconds(30));
  // On Windows "/etc/..." is rooted but has no drive: it is on the drive of agent.xml.
  const fs::path drive = dir.path().root_name();
  CHECK(cfg->signKey == drive / fs::path("/etc/pass/sign.key"));
  CHECK(cfg->homeCa == dir.path() / "ca" / "home.crt");
  CHECK(cfg->tlsKey == dir.path() / "agent-tls.key");
  CHECK(cfg->heartbeatInterval == std::chrono::minutes(60));
  CHECK(cfg->spool.maxEnvelopes == 5);
  CHECK(cfg->spool.maxBytes == 1048576);
  CHECK(cfg->stateDir == drive / fs::path("/var/lib/pass"));
}

TEST_CASE("renderAgentConfig round-trips through loadAgentConfig, markup in names included") {
  TempDir dir;
  AgentConfig cfg;
  cfg.agentId = *parseUuid(kUuid);
  cfg.customer = "Smith & Sons <\"Storage\"> 'GmbH'";
  cfg.site = "Halle <3> & \"Süd\"";
  cfg.name = "svp's -- host";
  cfg.endpoints = {"https://home-1.example:9455", "https://home-2.example:9455/?a=1&b=2"};
  cfg.proxy = "http://proxy.example:3128";
  cfg.connectTimeout = std::chrono::seconds(7);
  cfg.totalTimeout = std::chrono::seconds(45);
  cfg.signKey = dir.path() / "agent-sign.key";
  cfg.tlsKey = dir.path() / "agent-tls.key";
  cfg.tlsCert = dir.path() / "agent-tls.crt";
  cfg.homeCa = dir.path() / "home-ca.crt";
  cfg.homeHpke = dir.path() / "home-hpke.pub";
  cfg.heartbeatInterval = std::chrono::minutes(30);
  cfg.spool.maxEnvelopes = 123;
  cfg.spool.maxBytes = 4567890;
  cfg.stateDir = dir.path() / "state";

  std::string text = renderAgentConfig(cfg);
  CHECK(text.find("<!--") != std::string::npos);
  CHECK(text.find("<state") == std::string::npos);
  CHECK(text.find(dir.path().string()) == std::string::npos);  // key paths are file names

  auto file = writeFile(dir.path(), "agent.xml", text);
  auto loaded = loadAgentConfig(file);
  REQUIRE_MESSAGE(loaded.has_value(), loaded.error().message, "\n", text);
  CHECK(loaded->agentId == cfg.agentId);
  CHECK(loaded->customer == cfg.customer);
  CHECK(loaded->site == cfg.site);
  CHECK(loaded->name == cfg.name);
  CHECK(loaded->endpoints == cfg.endpoints);
  CHECK(loaded->proxy == cfg.proxy);
  CHECK(loaded->connectTimeout == cfg.connectTimeout);
  CHECK(loaded->totalTimeout == cfg.totalTimeout);
  CHECK(loaded->signKey == cfg.signKey);
  CHECK(loaded->tlsKey == cfg.tlsKey);
  CHECK(loaded->tlsCert == cfg.tlsCert);
  CHECK(loaded->homeCa == cfg.homeCa);
  CHECK(loaded->homeHpke == cfg.homeHpke);
  CHECK(loaded->heartbeatInterval == cfg.heartbeatInterval);
  CHECK(loaded->spool.maxEnvelopes == cfg.spool.maxEnvelopes);
  CHECK(loaded->spool.maxBytes == cfg.spool.maxBytes);
  CHECK(loaded->stateDir == cfg.stateDir);

  // A second render of what was loaded is the same text: nothing drifts.
  CHECK(renderAgentConfig(*loaded) == text);
}

TEST_CASE("each agent.xml error names file, line and key") {
  TempDir dir;
  const std::string good = minimalAgentXml();

  SUBCASE("unknown element") {
    auto text = replaced(good, "  </home>\n", "    <mirror url=\"https://x\"/>\n  </home>\n");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.unknown_element");
    CHECK(error.message.starts_with(prefix(dir, 6) + "pass-agent/home/mirror: "));
  }
  SUBCASE("unknown attribute") {
    auto text = replaced(good, "<home>", "<home retries=\"3\">");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.unknown_attribute");
    CHECK(error.message.starts_with(prefix(dir, 4) + "pass-agent/home/@retries: "));
    CHECK(error.message.find("timeout-seconds") != std::string::npos);  // lists what is allowed
  }
  SUBCASE("missing required attribute") {
    auto text = replaced(good, " site=\"Berlin\"", "");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.missing");
    CHECK(error.message.starts_with(prefix(dir, 3) + "pass-agent/identity/@site: "));
  }
  SUBCASE("mistyped uint") {
    auto text = replaced(good, "<home>", "<home timeout-seconds=\"6O\">");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.type");
    CHECK(error.message.starts_with(prefix(dir, 4) + "pass-agent/home/@timeout-seconds: "));
    CHECK(error.message.find("uint") != std::string::npos);
  }
  SUBCASE("uint that does not fit 64 bits") {
    auto text = replaced(good, "<home>", "<home timeout-seconds=\"18446744073709551616\">");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.type");
    CHECK(error.message.starts_with(prefix(dir, 4) + "pass-agent/home/@timeout-seconds: "));
  }
  SUBCASE("bad UUID") {
    auto text = replaced(good, std::string(kUuid), "123e4567-e89b-42d3-a456-42661417400g");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.type");
    CHECK(error.message.starts_with(prefix(dir, 3) + "pass-agent/identity/@id: "));
    CHECK(error.message.find("uuid") != std::string::npos);
  }
  SUBCASE("too many <home>") {
    auto text = replaced(good, "</pass-agent>",
                         "  <home>\n    <endpoint url=\"https://b:9455\"/>\n  </home>\n"
                         "</pass-agent>");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.occurs");
    CHECK(error.message.starts_with(prefix(dir, 7) + "pass-agent/home: "));
  }
  SUBCASE("no <endpoint>") {
    auto text = replaced(good, "    <endpoint url=\"https://home.example:9455\"/>\n", "");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.occurs");
    CHECK(error.message.starts_with(prefix(dir, 4) + "pass-agent/home/endpoint: "));
  }
  SUBCASE("no <identity>") {
    auto text = replaced(good, "<identity", "<!-- identity");
    text = replaced(text, "/>\n  <home>", "-->\n  <home>");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.occurs");
    CHECK(error.message.starts_with(prefix(dir, 2) + "pass-agent/identity: "));
  }
  SUBCASE("malformed XML reports the line of the fault") {
    auto text = replaced(good, "  </home>\n", "  </hom>\n");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.syntax");
    CHECK(error.message.starts_with(prefix(dir, 6)));
  }
  SUBCASE("text content") {
    auto text = replaced(good, "  </home>\n", "    https://home.example\n  </home>\n");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.syntax");
    CHECK(error.message.starts_with(prefix(dir, 6) + "pass-agent/home: "));
  }
  SUBCASE("wrong root element") {
    auto text = replaced(good, "<pass-agent schema=\"1\">", "<pass-home schema=\"1\">");
    text = replaced(text, "</pass-agent>", "</pass-home>");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.unknown_element");
    CHECK(error.message.starts_with(prefix(dir, 2) + "pass-home: "));
  }
  SUBCASE("non-https endpoint") {
    auto text = replaced(good, "https://home.example:9455", "http://home.example:9455");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.value");
    CHECK(error.message.starts_with(prefix(dir, 5) + "pass-agent/home/endpoint/@url: "));
  }
  SUBCASE("schema version other than 1") {
    auto text = replaced(good, "schema=\"1\"", "schema=\"2\"");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.value");
    CHECK(error.message.starts_with(prefix(dir, 2) + "pass-agent/@schema: "));
  }
  SUBCASE("heartbeat more often than every 5 minutes") {
    auto text =
        replaced(good, "</pass-agent>", "  <heartbeat interval-minutes=\"4\"/>\n</pass-agent>");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.value");
    CHECK(error.message.starts_with(prefix(dir, 7) + "pass-agent/heartbeat/@interval-minutes: "));
  }
  SUBCASE("zero timeout") {
    auto text = replaced(good, "<home>", "<home connect-timeout-seconds=\"0\">");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.value");
    CHECK(error.message.starts_with(prefix(dir, 4) + "pass-agent/home/@connect-timeout-seconds: "));
  }
  SUBCASE("two errors: the first by line is reported") {
    // The missing <endpoint> is found after <home>'s children were visited, yet it belongs
    // to line 4, before the unknown elements on lines 5 and 6.
    auto text = replaced(good, "<endpoint url=\"https://home.example:9455\"/>", "<mirror/>");
    text = replaced(text, "  </home>", "    <heartbeat bogus=\"1\"/>\n  </home>");
    auto error = loadError(dir, text);
    CHECK(error.code == "config.occurs");
    CHECK(error.message.starts_with(prefix(dir, 4) + "pass-agent/home/endpoint: "));
  }
  SUBCASE("a file that does not exist") {
    auto missing = dir.path() / "nope.xml";
    auto cfg = loadAgentConfig(missing);
    REQUIRE_FALSE(cfg.has_value());
    CHECK(cfg.error().code == "config.io");
    CHECK(cfg.error().message.find(missing.string()) != std::string::npos);
  }
}

TEST_CASE("an agent.xml serial must be a safe file name: it names cursor and pin files") {
  TempDir dir;
  const std::string good = minimalAgentXml();
  for (std::string_view serial : {"470849", "AF-109084", "HF-1", "91110206", "a.b_c"}) {
    auto text = replaced(good, "</pass-agent>",
                         fmt::format("  <arrays><hitachi-svp serial=\"{}\" sim-dir=\"sim\"/>"
                                     "</arrays>\n</pass-agent>",
                                     serial));
    auto cfg = loadAgentConfig(writeFile(dir.path(), "agent.xml", text));
    CHECK_MESSAGE(cfg.has_value(), serial, ": ", (cfg ? std::string() : cfg.error().message));
  }
  for (std::string_view serial : {"../../etc/cron.d/x", "a/b", "..", ".", "16 12"}) {
    auto text = replaced(good, "</pass-agent>",
                         fmt::format("  <arrays><hitachi-svp serial=\"{}\" sim-dir=\"sim\"/>"
                                     "</arrays>\n</pass-agent>",
                                     serial));
    auto error = loadError(dir, text);
    CHECK(error.code == "config.value");
    CHECK_MESSAGE(
        error.message.starts_with(prefix(dir, 7) + "pass-agent/arrays/hitachi-svp/@serial: \"" +
                                  std::string(serial) + "\" is not a serial number"),
        error.message);
  }
}

TEST_CASE("config::safeFileName: 1 to 64 of [A-Za-z0-9._-], not . or ..") {
  for (std::string_view ok : {"470849", "AF-109084", "HF-1", "a.b_c", "..."}) {
    CHECK_MESSAGE(config::safeFileName(ok), ok);
  }
  CHECK(config::safeFileName(std::string(64, '7')));
  CHECK_FALSE(config::safeFileName(std::string(65, '7')));
  for (std::string_view bad :
       {"", ".", "..", "../x", "a/b", "a\\b", "16 12", "x\n", "C:x", "\xc3\xa9", "a*"}) {
    CHECK_FALSE_MESSAGE(config::safeFileName(bad), bad);
  }
}

TEST_CASE("config::confinedPath: relative, no '..', no root, names a file") {
  CHECK(config::confinedPath("secrets/3par.txt").value() == fs::path("secrets/3par.txt"));
  CHECK(config::confinedPath("./pw.txt").value() == fs::path("pw.txt"));
  CHECK(config::confinedPath("a/./b").value() == fs::path("a/b"));
  struct Bad {
    std::string_view value;
    std::string_view why;
  };
  for (const Bad& bad : {Bad{"/etc/shadow", "is an absolute path"},
                         Bad{"\\\\server\\share\\x", "is an absolute path"},
                         Bad{"../home/secrets/smtp-password", "leaves the folder with \"..\""},
                         Bad{"a/../../x", "leaves the folder with \"..\""},
                         Bad{"a/../b", "leaves the folder with \"..\""}, Bad{"", "is empty"},
                         Bad{"secrets/", "names no file"}, Bad{".", "names no file"}}) {
    auto got = config::confinedPath(bad.value);
    REQUIRE_FALSE_MESSAGE(got.has_value(), bad.value);
    CHECK(got.error().code == "config.value");
    CHECK_MESSAGE(got.error().message.find(bad.why) != std::string::npos, got.error().message);
  }
}

#ifndef _WIN32
TEST_CASE("platform::readFileBeneath reads only a regular file inside the folder") {
  TempDir dir;
  const fs::path folder = dir / "form";
  fs::create_directories(folder / "secrets");
  writeFile(folder / "secrets", "pw.txt", "s3cret\n");
  writeFile(dir.path(), "outside.txt", "home secret\n");
  fs::create_directory_symlink(dir.path(), folder / "up");
  fs::create_symlink("../../outside.txt", folder / "secrets" / "out.txt");
  fs::create_symlink("pw.txt", folder / "secrets" / "alias.txt");
  fs::create_directory(folder / "dir");
  REQUIRE(::mkfifo((folder / "fifo").c_str(), 0600) == 0);

  auto read = [&](const char* relative, std::size_t max = 1024) {
    return platform::readFileBeneath(folder, relative, max);
  };
  CHECK(read("secrets/pw.txt").value() == "s3cret\n");
  // A link that stays inside resolves to a file inside: allowed.
  CHECK(read("secrets/alias.txt").value() == "s3cret\n");
  for (const char* escape : {"secrets/out.txt", "up/outside.txt"}) {
    auto got = read(escape);
    REQUIRE_FALSE_MESSAGE(got.has_value(), escape);
    CHECK(got.error().code == "unsafe_path");
    CHECK_MESSAGE(got.error().message.find("outside") != std::string::npos, got.error().message);
  }
  for (const char* special : {"dir", "fifo"}) {  // a FIFO without a writer must not block
    auto got = read(special);
    REQUIRE_FALSE_MESSAGE(got.has_value(), special);
    CHECK(got.error().code == "unsafe_path");
    CHECK(got.error().message.find("is not a regular file") != std::string::npos);
  }
  CHECK(read("secrets/pw.txt", 3).error().code == "too_large");
  CHECK(read("missing.txt").error().code == "not_found");
}
#endif

TEST_CASE("config::parse checks types, occurrences and lines on a small schema") {
  using config::AttributeDecl;
  using config::ElementDecl;
  using config::Type;
  static constexpr std::array kElements{
      ElementDecl{"r", 1, 1, "root"},
      ElementDecl{"r/item", 0, 2, "an item"},
  };
  static constexpr std::array kAttributes{
      AttributeDecl{"r/item", "n", Type::kUint, false, "7", "a number"},
      AttributeDecl{"r/item", "flag", Type::kBool, false, "false", "a flag"},
      AttributeDecl{"r/item", "url", Type::kUrl, false, {}, "a url"},
      AttributeDecl{"r/item", "note", Type::kString, false, "", "may be empty"},
      AttributeDecl{"r/item", "file", Type::kPath, false, {}, "must not be empty"},
  };
  const config::Schema schema{kElements, kAttributes};

  SUBCASE("defaults and document order") {
    auto doc = config::parse(schema, "<r>\n<item n=\"1\"/>\n<item flag=\"true\" note=\"\"/>\n</r>",
                             "t.xml");
    REQUIRE_MESSAGE(doc.has_value(), doc.error().message);
    CHECK(doc->file == "t.xml");
    auto items = doc->all("r/item");
    REQUIRE(items.size() == 2);
    CHECK(items[0]->line == 2);
    CHECK(items[0]->attributes.at("n") == "1");
    CHECK(items[0]->attributes.at("flag") == "false");
    CHECK(items[0]->attributes.at("note").empty());
    CHECK_FALSE(items[0]->attributes.contains("url"));
    CHECK(items[1]->line == 3);
    CHECK(items[1]->attributes.at("n") == "7");
    CHECK(items[1]->attributes.at("flag") == "true");
    REQUIRE(doc->first("r") != nullptr);
    CHECK(doc->first("r")->line == 1);
    CHECK(doc->first("r/nothing") == nullptr);
  }
  SUBCASE("CRLF line ends count as one line each") {
    auto doc = config::parse(schema, "<r>\r\n\r\n<item n=\"x\"/>\r\n</r>\r\n", "t.xml");
    REQUIRE_FALSE(doc.has_value());
    CHECK(doc.error().message.starts_with("t.xml:3: r/item/@n: "));
  }
  struct Case {
    const char* text;
    const char* code;
    const char* start;
  };
  const std::array cases{
      Case{"<r><item flag=\"yes\"/></r>", "config.type", "t.xml:1: r/item/@flag: expected bool"},
      Case{"<r><item url=\"https://\"/></r>", "config.type", "t.xml:1: r/item/@url: expected url"},
      Case{"<r><item url=\"ftp://host\"/></r>", "config.type", "t.xml:1: r/item/@url: "},
      Case{"<r><item url=\"https://h:x\"/></r>", "config.type", "t.xml:1: r/item/@url: "},
      Case{"<r><item n=\"-1\"/></r>", "config.type", "t.xml:1: r/item/@n: expected uint"},
      Case{"<r><item n=\"\"/></r>", "config.type", "t.xml:1: r/item/@n: "},
      Case{"<r><item file=\"\"/></r>", "config.type",
           "t.xml:1: r/item/@file: expected a non-empty"},
      Case{"<r><item n=\"1\" n=\"2\"/></r>", "config.syntax", "t.xml:1: r/item/@n: "},
      Case{"<r>\n<item/>\n<item/>\n<item/>\n</r>", "config.occurs", "t.xml:4: r/item: "},
      Case{"<r/>\n<r/>", "config.occurs", "t.xml:2: r: "},
      Case{"<r><![CDATA[x]]></r>", "config.syntax", "t.xml:1: r: "},
      Case{"", "config.syntax", "t.xml:1: "},
      Case{"<r>\n<item>\n</r>", "config.syntax", "t.xml:3: "},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto doc = config::parse(schema, c.text, "t.xml");
    REQUIRE_FALSE(doc.has_value());
    CHECK(doc.error().code == c.code);
    CHECK_MESSAGE(doc.error().message.starts_with(c.start), doc.error().message);
  }
  SUBCASE("valid urls") {
    for (const char* url : {"https://h", "http://h:3128", "https://[::1]:9455/x", "https://u@h"}) {
      CAPTURE(url);
      auto doc = config::parse(schema, fmt::format("<r><item url=\"{}\"/></r>", url), "t.xml");
      CHECK_MESSAGE(doc.has_value(), doc.error().message);
    }
  }
}

TEST_CASE("markdownReference lists every element and attribute of agent.xml") {
  std::string md = config::markdownReference(agentSchema(), "agent.xml");
  CHECK(md.starts_with("## agent.xml\n"));
  for (const auto& element : agentSchema().elements) {
    CHECK_MESSAGE(md.find(fmt::format("| `{}` |", element.path)) != std::string::npos,
                  element.path);
  }
  for (const auto& attr : agentSchema().attributes) {
    CHECK_MESSAGE(md.find(fmt::format("| `{}` | {} |", attr.name, config::toString(attr.type))) !=
                      std::string::npos,
                  attr.name);
  }
  CHECK(md.find("| `endpoint` |") == std::string::npos);  // elements are listed by full path
  CHECK(md.find("| `pass-agent/home/endpoint` | 1..unbounded |") != std::string::npos);
  CHECK(md.find("| `interval-minutes` | uint | default `240` |") != std::string::npos);
  CHECK(md.find("| `id` | uuid | required |") != std::string::npos);
}

TEST_CASE("every default in agentSchema() passes its own type check") {
  // Render a file that sets every attribute to its declared default: it must load.
  TempDir dir;
  std::string text = std::string("<pass-agent schema=\"1\">\n<identity id=\"") +
                     std::string(kUuid) +
                     "\" customer=\"c\" site=\"s\" name=\"n\"/>\n"
                     "<home><endpoint url=\"https://h:9455\"/></home>\n";
  for (const auto& element : agentSchema().elements) {
    std::string_view path = element.path;
    if (path == "pass-agent" || path.starts_with("pass-agent/home") ||
        path == "pass-agent/identity" || path.starts_with("pass-agent/arrays")) {
      continue;
    }
    std::string line = fmt::format("<{}", path.substr(path.rfind('/') + 1));
    for (const auto& attr : agentSchema().attributes) {
      if (attr.element != path) continue;
      REQUIRE_MESSAGE(attr.defaultValue.data() != nullptr, attr.name, " has no default");
      line += fmt::format(" {}=\"{}\"", attr.name, attr.defaultValue);
    }
    text += line + "/>\n";
  }
  // Each array element: required attributes get a sample of their type, the others their
  // default.
  text += "<arrays>\n";
  for (const auto& element : agentSchema().elements) {
    std::string_view path = element.path;
    if (!path.starts_with("pass-agent/arrays/")) continue;
    std::string line = fmt::format("<{}", path.substr(path.rfind('/') + 1));
    for (const auto& attr : agentSchema().attributes) {
      if (attr.element != path || (!attr.required && attr.defaultValue.empty())) continue;
      std::string_view sample = attr.type == config::Type::kUint   ? "1"
                                : attr.type == config::Type::kBool ? "true"
                                                                   : "x";
      line += fmt::format(" {}=\"{}\"", attr.name, attr.required ? sample : attr.defaultValue);
    }
    text += line + "/>\n";
  }
  text += "</arrays>\n</pass-agent>\n";
  auto cfg = loadAgentConfig(writeFile(dir.path(), "agent.xml", text));
  CHECK_MESSAGE(cfg.has_value(), (cfg ? std::string() : cfg.error().message), "\n", text);
}

// The reference covers every collector; a build without some (the Windows agent) has less.
#if defined(PASS_TEST_HAS_HITACHI_SVP) && defined(PASS_TEST_HAS_HITACHI_DF) && \
    defined(PASS_TEST_HAS_HPE_3PAR) && defined(PASS_TEST_HAS_NIMBLE)
TEST_CASE("docs/configuration.md contains the generated agent.xml reference") {
  const std::string begin = "<!-- BEGIN GENERATED -->\n";
  const std::string end = "<!-- END GENERATED -->";
  std::string doc = readText(fs::path(PASS_SOURCE_DIR) / "docs" / "configuration.md");
  auto from = doc.find(begin);
  auto to = doc.find(end);
  REQUIRE_MESSAGE(from != std::string::npos, "docs/configuration.md lacks ", begin);
  REQUIRE_MESSAGE(to != std::string::npos, "docs/configuration.md lacks ", end);
  REQUIRE(from < to);
  std::string generated = doc.substr(from + begin.size(), to - from - begin.size());
  std::string expected = config::markdownReference(agentSchema(), "agent.xml");
  CHECK_MESSAGE(generated == expected,
                "docs/configuration.md is out of date with agentSchema(). Regenerate it: replace "
                "everything between the line \"<!-- BEGIN GENERATED -->\" and the line "
                "\"<!-- END GENERATED -->\" with the output of `pass-agent config-reference` "
                "(config::markdownReference(agentSchema(), \"agent.xml\")).");
}
#endif
