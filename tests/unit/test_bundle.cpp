// Importing an agent bundle (libpass/src/bundle.cpp), as pass-svp.exe import-bundle and the
// MSI do. Also runs under Wine, where the keys' ACL is the Windows one.

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "pass/bundle.hpp"
#include "pass/config.hpp"
#include "pass/crypto.hpp"
#include "platform/fs.hpp"
#include "test_support.hpp"

using namespace pass;
using pass::test::TempDir;
namespace fs = std::filesystem;

namespace {

void writeText(const fs::path& p, const std::string& text) {
  REQUIRE(platform::writeFileAtomic(p, text).has_value());
}

/// A bundle as `pass-home enroll` writes it (the key files' content is not checked here).
AgentId writeBundle(const fs::path& dir, const std::string& endpoint = "https://home:9455") {
  fs::create_directories(dir);
  AgentConfig cfg;
  cfg.agentId = randomUuid();
  cfg.customer = "ACME Corp";
  cfg.site = "munich-01";
  cfg.name = "svp-1";
  cfg.endpoints = {endpoint};
  writeText(dir / "agent.xml", renderAgentConfig(cfg));
  for (const char* name :
       {"agent-sign.key", "agent-tls.key", "agent-tls.crt", "home-ca.crt", "home-hpke.pub"}) {
    writeText(dir / name, std::string("content of ") + name);
  }
  return cfg.agentId;
}

std::string readText(const fs::path& p) { return platform::readFile(p).value(); }

}  // namespace

TEST_CASE("a bundle is copied whole, the state directory is created, and again is harmless") {
  TempDir tmp;
  const auto id = writeBundle(tmp / "bundle");
  // A folder name with a space and non-ASCII letters, as under C:\ProgramData on a French SVP.
  const auto to = tmp.path() / "Données PASS";
  auto imported = importBundle(tmp / "bundle", to);
  REQUIRE_MESSAGE(imported.has_value(), pass::test::errorText(imported));
  CHECK(imported->agentId == formatUuid(id));
  CHECK(imported->written.size() == 6);
  CHECK_FALSE(imported->replacedSameAgent);
  CHECK(imported->stateDir == to / "state");
  CHECK(fs::is_directory(to / "state"));
  for (const auto& name : bundleFiles()) {
    CHECK(readText(to / name) == readText(tmp / "bundle" / name));
  }
  auto loaded = loadAgentConfig(to / "agent.xml");
  REQUIRE(loaded.has_value());
  CHECK(loaded->signKey == to / "agent-sign.key");

  // The same agent with a new endpoint: replaced, state kept.
  writeText(to / "state" / "seq", "42\n");
  auto cfg = loadAgentConfig(tmp / "bundle" / "agent.xml").value();
  cfg.endpoints = {"https://new-home:9455"};
  writeText(tmp / "bundle" / "agent.xml", renderAgentConfig(cfg));
  auto again = importBundle(tmp / "bundle", to);
  REQUIRE_MESSAGE(again.has_value(), pass::test::errorText(again));
  CHECK(again->replacedSameAgent);
  CHECK(again->stateDir.empty());  // existed already
  CHECK(readText(to / "state" / "seq") == "42\n");
  CHECK(loadAgentConfig(to / "agent.xml").value().endpoints ==
        std::vector<std::string>{"https://new-home:9455"});
}

TEST_CASE("another agent's bundle is refused while the installed agent has state") {
  TempDir tmp;
  const auto first = writeBundle(tmp / "first");
  writeBundle(tmp / "second");
  REQUIRE(importBundle(tmp / "first", tmp / "pass").has_value());
  writeText(tmp / "pass" / "state" / "seq", "7\n");
  auto refused = importBundle(tmp / "second", tmp / "pass");
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == "bundle.other_agent");
  CHECK(refused.error().message.find(formatUuid(first)) != std::string::npos);
  // Nothing of the installed agent changed.
  CHECK(loadAgentConfig(tmp / "pass" / "agent.xml").value().agentId == first);
  // Without state (a fresh install whose first run never happened) it may be replaced.
  fs::remove_all(tmp / "pass" / "state");
  CHECK(importBundle(tmp / "second", tmp / "pass").has_value());
}

TEST_CASE("an incomplete or invalid bundle is refused, naming what is wrong") {
  TempDir tmp;
  writeBundle(tmp / "bundle");
  fs::remove(tmp / "bundle" / "home-hpke.pub");
  auto missing = importBundle(tmp / "bundle", tmp / "pass");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == "bundle.missing");
  CHECK(missing.error().message.find("home-hpke.pub") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp / "pass"));

  writeBundle(tmp / "broken");
  writeText(tmp / "broken" / "agent.xml", "<pass-agent schema=\"1\"><identity/></pass-agent>\n");
  auto invalid = importBundle(tmp / "broken", tmp / "pass");
  REQUIRE_FALSE(invalid.has_value());
  CHECK(invalid.error().code == "bundle.invalid");
  CHECK(invalid.error().message.find("agent.xml:1") != std::string::npos);
}
