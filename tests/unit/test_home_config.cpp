// home.xml: the documented example loads, every error names file, line and key, and the
// generated reference in docs/home-configuration.md matches the schema.

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "pass/config.hpp"
#include "pass/home/home_config.hpp"
#include "test_home_support.hpp"

using namespace pass;
using namespace pass::home;
using pass::home::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string readText(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void writeText(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << text;
}

const fs::path kDoc = fs::path(PASS_SOURCE_DIR) / "docs" / "home-configuration.md";

/// The example home.xml of docs/home-configuration.md, with its secret files and calendar,
/// written into `dir`.
fs::path writeDocExample(const fs::path& dir) {
  std::string doc = readText(kDoc);
  auto from = doc.find("```xml\n");
  REQUIRE(from != std::string::npos);
  from += 7;
  auto to = doc.find("```", from);
  REQUIRE(to != std::string::npos);
  writeText(dir / "home.xml", doc.substr(from, to - from));
  writeText(dir / "secrets" / "smtp-password", "s3cret\n");
  writeText(dir / "secrets" / "twilio-token", "tok\n");
  writeText(dir / "secrets" / "pd-routing-key", "R0UT1NG\n");
  fs::copy_file(fs::path(PASS_SOURCE_DIR) / "tests/data/oncall/iana_new_york.ics",
                dir / "acme-oncall.ics");
  return dir / "home.xml";
}

std::string errorOf(const fs::path& file) {
  auto cfg = loadHomeConfig(file);
  REQUIRE_FALSE(cfg.has_value());
  return cfg.error().code + " " + cfg.error().message;
}

/// A small valid file; line 4 is the contact, line 5 the rule.
constexpr const char* kSmall = R"(<pass-home schema="1">
  <smtp url="smtp://127.0.0.1:2525" from="pass@example.com" tls="none"/>
  <customer name="ACME Corp">
    <contact name="Eli" role="engineer" email="eli@acme.example"/>
    <rule family="hpe_3par" severity="Minor" action="record"/>
  </customer>
</pass-home>
)";

}  // namespace

TEST_CASE("the example of docs/home-configuration.md loads with its secrets") {
  TempDir dir;
  auto cfg = loadHomeConfig(writeDocExample(dir.path()));
  REQUIRE_MESSAGE(cfg.has_value(), (cfg ? "" : cfg.error().message));
  REQUIRE(cfg->smtp.has_value());
  CHECK(cfg->smtp->url == "smtp://mail.example.com:587");
  CHECK(cfg->smtp->password == "s3cret");
  CHECK(cfg->smtp->tls == notify::SmtpSettings::Tls::kRequired);
  CHECK(cfg->smsGateways.at("twilio").password == "tok");
  CHECK(cfg->webhooks.at("pagerduty").routingKey == "R0UT1NG");
  CHECK(cfg->ackUrl == "https://pass.example.com:9456");
  REQUIRE(cfg->customers.size() == 1);
  const auto& acme = cfg->customers[0];
  CHECK(acme.contacts.size() == 3);
  CHECK(acme.contacts[0].urgentOnly);
  CHECK(acme.escalateAfterMs == 30 * 60 * 1000);
  CHECK(acme.onCall == dir.path() / "acme-oncall.ics");
  REQUIRE(acme.rules.size() == 1);
  CHECK(acme.rules[0].codes == std::vector<std::string>{"ffee*"});
  CHECK(cfg->rules.size() == 1);
  auto d = decide(*cfg, "ACME Corp", "Berlin DC1", "hitachi_svp", "FFEE01", "acute");
  CHECK(std::string(toString(d.action)) == "ignore");
  d = decide(*cfg, "ACME Corp", "Hamburg", "hitachi_df", "fan.alarm", "service");
  CHECK(std::string(toString(d.action)) == "record");
}

TEST_CASE("without home.xml the home runs on the defaults") {
  TempDir dir;
  auto cfg = loadHomeConfigFromState(dir.path());
  REQUIRE(cfg.has_value());
  CHECK(cfg->file.empty());
  CHECK(cfg->customers.empty());
  CHECK_FALSE(cfg->smtp.has_value());
}

TEST_CASE("ack-link-valid-seconds sets how long acknowledgement links work (default 7 days)") {
  TempDir dir;
  auto file = dir.path() / "home.xml";
  writeText(file, kSmall);
  auto cfg = loadHomeConfig(file);
  REQUIRE(cfg.has_value());
  CHECK(cfg->ackLinkValidMs == 7LL * 24 * 3600 * 1000);
  std::string text = kSmall;
  auto at = text.find("<smtp");
  REQUIRE(at != std::string::npos);
  writeText(file, std::string(text).insert(at, R"(<notifications ack-link-valid-seconds="90"/>)"));
  cfg = loadHomeConfig(file);
  REQUIRE_MESSAGE(cfg.has_value(), (cfg ? "" : cfg.error().message));
  CHECK(cfg->ackLinkValidMs == 90'000);
  writeText(file, std::string(text).insert(at, R"(<notifications ack-link-valid-seconds="0"/>)"));
  auto e = errorOf(file);
  CHECK(e.find("home.xml:2: pass-home/notifications/@ack-link-valid-seconds") != std::string::npos);
}

TEST_CASE("home.xml errors name the file, the line and the key") {
  TempDir dir;
  auto file = dir.path() / "home.xml";
  writeText(file, kSmall);
  REQUIRE(loadHomeConfig(file).has_value());

  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = kSmall;
    auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    writeText(file, text.replace(at, from.size(), to));
    return errorOf(file);
  };
  auto e = with(R"(action="record")", R"(action="recrod")");
  CHECK(e.find("config.value") == 0);
  CHECK(e.find("home.xml:5: pass-home/customer/rule/@action: \"recrod\" is not one of: "
               "ticket, record, ignore") != std::string::npos);
  e = with(R"(severity="Minor")", R"(severity="Minor Sever")");
  CHECK(e.find("home.xml:5:") != std::string::npos);
  CHECK(e.find("\"Sever\" is not on the hpe_3par scale") != std::string::npos);
  e = with(R"(email="eli@acme.example")", R"(sms="0151")");
  CHECK(e.find("home.xml:4: pass-home/customer/contact/@sms: \"0151\" is not an E.164 number") !=
        std::string::npos);
  e = with(R"(email="eli@acme.example")", R"(webhook="pd")");
  CHECK(e.find("home.xml:4:") != std::string::npos);
  CHECK(e.find("no <webhook name=\"pd\">") != std::string::npos);
  e = with(R"(email="eli@acme.example")", "");
  CHECK(e.find("a contact needs email, sms, email-sms or webhook") != std::string::npos);
  e = with(R"(tls="none")", R"(tls="none" user="pass" password-file="missing.txt")");
  CHECK(e.find("home.xml:2: pass-home/smtp/@password-file:") != std::string::npos);
  CHECK(e.find("missing.txt") != std::string::npos);
  e = with(R"(url="smtp://127.0.0.1:2525")", R"(url="http://127.0.0.1:2525")");
  CHECK(e.find("must start with smtp:// or smtps://") != std::string::npos);
  e = with(R"(<customer name="ACME Corp">)",
           R"(<customer name="ACME Corp" quiet-hours="22:00-07:00" time-zone="Mars/Olympus">)");
  CHECK(e.find("home.xml:3: pass-home/customer/@quiet-hours:") != std::string::npos);
  e = with(R"(<customer name="ACME Corp">)", R"(<customer name="ACME Corp" on-call="no.ics">)");
  CHECK(e.find("home.xml:3: pass-home/customer/@on-call:") != std::string::npos);
  e = with("<smtp", "<smtpp");
  CHECK(e.find("config.") == 0);
  CHECK(e.find("home.xml:2") != std::string::npos);
}

TEST_CASE("docs/home-configuration.md holds the current generated reference") {
  const std::string begin = "<!-- BEGIN GENERATED -->\n";
  const std::string end = "<!-- END GENERATED -->";
  std::string doc = readText(kDoc);
  auto from = doc.find(begin);
  auto to = doc.find(end);
  REQUIRE(from != std::string::npos);
  REQUIRE(to != std::string::npos);
  std::string generated = doc.substr(from + begin.size(), to - from - begin.size());
  CHECK_MESSAGE(generated == config::markdownReference(homeSchema(), "home.xml"),
                "docs/home-configuration.md is out of date with homeSchema(): replace the "
                "generated part with the output of `pass-home config-reference`.");
}
