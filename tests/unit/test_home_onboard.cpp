// The new-customer form and `pass-home onboard`: validation that names line and field, the
// bundles and appliance inputs it writes, and identities kept across re-runs.

#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "pass/config.hpp"
#include "pass/home/onboard.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/store.hpp"
#include "platform/fs.hpp"
#include "test_home_support.hpp"

using namespace pass;
using namespace pass::home;
using namespace pass::home::test;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kT0 = 1'800'000'000'000;

const fs::path kExample = fs::path(PASS_SOURCE_DIR) / "docs/examples/new-customer-form.xml";

std::string readText(const fs::path& file) {
  auto text = platform::readFile(file);
  REQUIRE_MESSAGE(text.has_value(), file.string());
  return *text;
}

void writeText(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << text;
}

/// The example form with `from` replaced by `to` (which must occur), in `dir` beside a copy of
/// its password file.
fs::path exampleWith(const TempDir& dir, const std::string& from = {}, const std::string& to = {}) {
  std::string text = readText(kExample);
  if (!from.empty()) {
    auto at = text.find(from);
    REQUIRE_MESSAGE(at != std::string::npos, from);
    text.replace(at, from.size(), to);
  }
  fs::path form = dir / "form.xml";
  writeText(form, text);
  writeText(dir / "secrets/3par-1612345.txt", "s3cret pass\r\nsecond line\n");
  return form;
}

struct Onboarding {
  Onboarding() {
    auto done = initState(InitOptions{dir / "state", {}});
    REQUIRE_MESSAGE(done.has_value(), (done ? "" : done.error().message));
  }
  Result<OnboardReport> run(const fs::path& form, std::vector<std::string> endpoints = {}) {
    return onboard(OnboardOptions{dir / "state", form, dir / "out", std::move(endpoints), kT0});
  }
  std::vector<ExpectedArray> expected(const std::string& uuid) {
    auto store = Store::open(dir / "state" / "home.db");
    REQUIRE(store.has_value());
    return store->expectedArrays(uuid).value();
  }
  TempDir dir;
};

}  // namespace

TEST_CASE("the example form in docs/ is valid and reads as written") {
  auto form = loadForm(kExample);
  REQUIRE_MESSAGE(form.has_value(), (form ? "" : form.error().message));
  CHECK(form->customer == "ACME Bank");
  CHECK(form->site == "Frankfurt DC2");
  CHECK(form->contacts.size() == 2);
  REQUIRE(form->appliance.has_value());
  CHECK(form->appliance->hostname == "pass-acme-fra2");
  REQUIRE(form->appliance->interfaces.size() == 1);
  CHECK(form->appliance->interfaces[0].prefix == 24);
  REQUIRE(form->arrays.size() == 4);
  CHECK(form->arrays[0].family == "hpe_3par");
  CHECK(form->arrays[1].passwordFrom == PasswordSource::kOnSite);
  CHECK(form->arrays[2].unit == "HUS-FRA2");
  CHECK(form->arrays[2].management.size() == 2);
  CHECK(form->arrays[3].svpHost == "svp-fra2-vsp");
  CHECK_FALSE(form->arrays[3].onAppliance());
}

TEST_CASE("a bad form value is refused with its line, its field and what a valid one looks like") {
  struct Case {
    std::string from, to, expected;
  };
  const Case cases[] = {
      {R"(netmask="255.255.255.0")", R"(netmask="255.0.255.0")",
       ":12: new-customer-form/appliance/interface/@netmask: \"255.0.255.0\" is not a netmask, "
       "e.g. 255.255.255.0 or 24"},
      {R"(gateway="10.20.30.1")", R"(gateway="10.20.99.1")",
       ":12: new-customer-form/appliance/interface/@gateway: 10.20.99.1 is outside "
       "10.20.30.40/24"},
      {R"(address="10.20.30.40")", R"(address="10.20.30.400")",
       "@address: \"10.20.30.400\" is not an IPv4 address, e.g. 10.20.30.40"},
      {R"(hypervisor="vmware")", R"(hypervisor="esx")",
       ":11: new-customer-form/appliance/@hypervisor: \"esx\" is not one of vmware, hyper-v"},
      {R"(hostname="pass-acme-fra2")", R"(hostname="pass_acme")", "is not a host name"},
      {R"(family="nimble")", R"(family="pure")",
       ":22: new-customer-form/array/@family: \"pure\" is not one of hitachi-svp"},
      {R"(serial="1612345")", R"(serial="16 12")", "@serial: \"16 12\" is not a serial number"},
      {R"(password="on-site")", R"(password="hunter2")",
       "@password: \"hunter2\" must be \"file:PATH\""},
      {R"(password="on-site")", "", "@password: is missing"},
      {R"(password="file:secrets/3par-1612345.txt")", R"(password="file:nowhere.txt")",
       "nowhere.txt: No such file or directory"},
      {R"(password="file:secrets/3par-1612345.txt")", R"(password="file:../secret.txt")",
       ":20: new-customer-form/array/@password: \"../secret.txt\" leaves the folder with \"..\""},
      {R"( sim-dir="D:\SVP\SIM")", "", "@sim-dir: is missing"},
      {R"(time-zone="Europe/Berlin")", R"(time-zone="Mars/Olympus")",
       "\"Mars/Olympus\" is not an IANA time zone"},
      {R"(sms="+4915112345678")", R"(sms="0151 12345678")", "is not an E.164 number"},
      {R"(ssh="on")", R"(ssh="yes")", "@ssh: \"yes\" must be on or off"},
      {R"(management="10.20.5.10")", R"(management="10.20.5.10 10.20.5.11 10.20.5.12")",
       "must be one or two addresses"},
      {R"(<array family="nimble")",
       R"(<array family="nimble" model="AF20" serial="AF-204455" management="10.20.5.22" )"
       R"(user="guest" password="on-site"/><array family="nimble")",
       "@serial: nimble AF-204455 is listed twice"},
      {R"(family="nimble")", R"(family="nimble" colour="blue")", "colour"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.to);
    TempDir dir;
    fs::path form = exampleWith(dir, c.from, c.to);
    auto loaded = loadForm(form);
    REQUIRE_FALSE(loaded.has_value());
    CHECK(loaded.error().code.starts_with("config."));
    CHECK_MESSAGE(loaded.error().message.find(c.expected) != std::string::npos,
                  loaded.error().message);
    CHECK(loaded.error().message.starts_with(form.string()));
  }
}

TEST_CASE("form rules across elements: the appliance, ssh keys, unique agent names") {
  TempDir dir;
  // Appliance arrays without an appliance.
  std::string text = readText(kExample);
  auto start = text.find("  <!-- The appliance VM");
  auto end = text.find("</appliance>") + std::string("</appliance>").size();
  text.erase(start, end - start);
  writeText(dir / "no-appliance.xml", text);
  writeText(dir / "secrets/3par-1612345.txt", "pw\n");
  auto loaded = loadForm(dir / "no-appliance.xml");
  REQUIRE_FALSE(loaded.has_value());
  CHECK(loaded.error().message.find("hpe-3par arrays are watched from the appliance") !=
        std::string::npos);

  TempDir dir2;
  auto noKeys = exampleWith(dir2);
  std::string noKeysText = readText(noKeys);
  auto key = noKeysText.find("    <ssh-key");
  noKeysText.erase(key, noKeysText.find('\n', key) + 1 - key);
  writeText(noKeys, noKeysText);
  loaded = loadForm(noKeys);
  REQUIRE_FALSE(loaded.has_value());
  CHECK_MESSAGE(
      loaded.error().message.find("no <ssh-key> says who may log in") != std::string::npos,
      loaded.error().message);

  TempDir dir4;
  auto sshOff = exampleWith(dir4, R"(ssh="on")", R"(ssh="off")");
  loaded = loadForm(sshOff);
  REQUIRE_FALSE(loaded.has_value());
  CHECK_MESSAGE(loaded.error().message.find(":22: new-customer-form/array/@password: \"on-site\" "
                                            "needs someone to log in") != std::string::npos,
                loaded.error().message);

  TempDir dir3;
  auto clash = exampleWith(dir3, R"(svp-host="svp-fra2-vsp")", R"(svp-host="pass-acme-fra2")");
  loaded = loadForm(clash);
  REQUIRE_FALSE(loaded.has_value());
  CHECK(loaded.error().message.find("already the name of another agent") != std::string::npos);
}

TEST_CASE("onboard writes the appliance's bundle and inputs and one bundle per SVP") {
  Onboarding o;
  fs::path form = exampleWith(o.dir);
  auto report = o.run(form, {"https://pass.example.net:9455"});
  REQUIRE_MESSAGE(report.has_value(), (report ? "" : report.error().message));
  REQUIRE(report->agents.size() == 2);
  CHECK(report->agents[0].name == "pass-acme-fra2");
  CHECK(report->agents[0].enrolled);
  CHECK(report->agents[0].arrays == 3);
  CHECK(report->agents[1].name == "svp-fra2-vsp");

  const fs::path appliance = o.dir / "out/appliance";
  auto cfg = loadAgentConfig(appliance / "bundle/agent.xml");
  REQUIRE_MESSAGE(cfg.has_value(), (cfg ? "" : cfg.error().message));
  CHECK(formatUuid(cfg->agentId) == report->agents[0].uuid);
  CHECK(cfg->customer == "ACME Bank");
  CHECK(cfg->endpoints == std::vector<std::string>{"https://pass.example.net:9455"});
  REQUIRE(cfg->arrays.size() == 3);
  CHECK(cfg->arrays[0].settings.at("address") == "10.20.5.10");
  CHECK(cfg->arrays[0].settings.at("password-file") == "secrets/hpe_3par-1612345");
  CHECK(cfg->arrays[2].settings.at("snm2-dir") == "/opt/snm2");
  // The password's first line only, readable by its owner only.
  CHECK(readText(appliance / "secrets/hpe_3par-1612345") == "s3cret pass\n");
  const auto ownerOnly = fs::perms::owner_read | fs::perms::owner_write;
  CHECK(permissionsOf(appliance / "secrets/hpe_3par-1612345") == ownerOnly);
  CHECK_FALSE(fs::exists(appliance / "secrets/nimble-AF-204455"));  // on-site
  CHECK(readText(appliance / "rootfs/etc/systemd/network/10-eth0.network")
            .find("Address=10.20.30.40/24\nGateway=10.20.30.1\n") != std::string::npos);
  CHECK(readText(appliance / "rootfs/etc/resolv.conf")
            .find("search acme.example\nnameserver 10.20.0.53\nnameserver 10.20.0.54\n") !=
        std::string::npos);
  CHECK(readText(appliance / "rootfs/etc/hostname") == "pass-acme-fra2\n");
  CHECK(readText(appliance / "rootfs/etc/ssh/authorized_keys/pass-admin")
            .starts_with("ssh-ed25519 "));
  std::string env = readText(appliance / "appliance.env");
  CHECK(env.find("PASS_HOSTNAME='pass-acme-fra2'\n") != std::string::npos);
  CHECK(env.find("PASS_SSH='on'\n") != std::string::npos);
  CHECK(env.find("PASS_NEEDS_SNM2='yes'\n") != std::string::npos);
  CHECK(env.find("PASS_ON_SITE_SECRETS='nimble-AF-204455'\n") != std::string::npos);
  CHECK(readText(appliance / "snm2-units.txt")
            .find("HUS-FRA2\t92210033\tHUS130\t10.20.5.30\t10.20.5.31") != std::string::npos);

  auto svp = loadAgentConfig(o.dir / "out/svp/svp-fra2-vsp/agent.xml");
  REQUIRE(svp.has_value());
  REQUIRE(svp->arrays.size() == 1);
  CHECK(svp->arrays[0].family == "hitachi_svp");
  CHECK(svp->arrays[0].settings.at("sim-dir") == "D:\\SVP\\SIM");

  std::string customer = readText(o.dir / "out/home-customer.xml");
  CHECK(customer.find(R"(<customer name="ACME Bank" time-zone="Europe/Berlin">)") !=
        std::string::npos);
  CHECK(customer.find(R"(notify="urgent")") != std::string::npos);

  auto expected = o.expected(report->agents[0].uuid);
  REQUIRE(expected.size() == 3);
  CHECK(expected[0].family == "hitachi_df");
  CHECK(expected[0].sinceMs == kT0);
  CHECK(o.expected(report->agents[1].uuid).size() == 1);
}

TEST_CASE("onboard again with a changed form: same identities, the change applied") {
  Onboarding o;
  auto first = o.run(exampleWith(o.dir), {"https://pass.example.net:9455"});
  REQUIRE(first.has_value());
  const fs::path bundle = o.dir / "out/appliance/bundle";
  const std::string signKey = readText(bundle / "agent-sign.key");

  // A new IP, a new array, the SVP gone from the form.
  std::string text = readText(o.dir / "form.xml");
  text.replace(text.find("10.20.30.40"), 11, "10.20.30.41");
  auto svp = text.find("  <array family=\"hitachi-svp\"");
  text.replace(svp, text.find("/>", svp) + 2 - svp,
               R"(<array family="nimble" model="HF20" serial="HF-1" management="10.20.5.21" )"
               R"(user="guest" password="on-site"/>)");
  writeText(o.dir / "form.xml", text);
  auto second = o.run(o.dir / "form.xml");
  REQUIRE_MESSAGE(second.has_value(), (second ? "" : second.error().message));
  REQUIRE(second->agents.size() == 1);
  CHECK_FALSE(second->agents[0].enrolled);
  CHECK(second->agents[0].uuid == first->agents[0].uuid);
  CHECK(readText(bundle / "agent-sign.key") == signKey);
  auto cfg = loadAgentConfig(bundle / "agent.xml");
  REQUIRE(cfg.has_value());
  CHECK(cfg->arrays.size() == 4);
  CHECK(cfg->endpoints == std::vector<std::string>{"https://pass.example.net:9455"});
  CHECK(readText(o.dir / "out/appliance/rootfs/etc/systemd/network/10-eth0.network")
            .find("Address=10.20.30.41/24") != std::string::npos);
  CHECK(o.expected(first->agents[0].uuid).size() == 4);
  // The SVP's agent is still enrolled: the operator is told, nothing is revoked behind them.
  bool told = false;
  for (const auto& note : second->notes) {
    told = told || note.find("svp-fra2-vsp") != std::string::npos;
  }
  CHECK(told);
}

TEST_CASE("onboard refuses a re-run whose bundle is gone and writes nothing for a bad form") {
  Onboarding o;
  auto first = o.run(exampleWith(o.dir));
  REQUIRE(first.has_value());
  fs::remove_all(o.dir / "out/appliance/bundle");
  auto again = o.run(o.dir / "form.xml");
  REQUIRE_FALSE(again.has_value());
  CHECK(again.error().code == "onboard.bundle_missing");
  CHECK(again.error().message.find(first->agents[0].uuid) != std::string::npos);
  CHECK(again.error().message.find("revoke") != std::string::npos);

  Onboarding fresh;
  auto bad = fresh.run(exampleWith(fresh.dir, R"(ssh="on")", R"(ssh="maybe")"));
  REQUIRE_FALSE(bad.has_value());
  CHECK_FALSE(fs::exists(fresh.dir / "out"));
  auto store = Store::open(fresh.dir / "state" / "home.db");
  CHECK(store->agents()->empty());
}

TEST_CASE("docs/onboarding.md holds the current generated form reference") {
  const std::string begin = "<!-- BEGIN GENERATED -->\n";
  const std::string end = "<!-- END GENERATED -->";
  std::string doc = readText(fs::path(PASS_SOURCE_DIR) / "docs/onboarding.md");
  auto from = doc.find(begin);
  auto to = doc.find(end);
  REQUIRE(from != std::string::npos);
  REQUIRE(to != std::string::npos);
  std::string generated = doc.substr(from + begin.size(), to - from - begin.size());
  CHECK_MESSAGE(generated == config::markdownReference(formSchema(), "new-customer form"),
                "docs/onboarding.md is out of date with formSchema(): replace the generated "
                "part with the output of `pass-home form-reference`.");
}
