// pass-home onboard: the validated new-customer form becomes enrolled agents, their bundles,
// the appliance image's inputs and the arrays each agent must report.

#include <algorithm>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <pugixml.hpp>

#include "pass/home/onboard.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/state_store.hpp"
#include "pass/home/store.hpp"
#include "platform/fs.hpp"

namespace pass::home {

namespace {

namespace fs = std::filesystem;

/// Where the SNM2 CLI is installed on the appliance (installer/debian's pass-agent.service
/// may write there).
constexpr std::string_view kSnm2Dir = "/opt/snm2";

/// One agent the form asks for: the appliance or one SVP.
struct PlannedAgent {
  std::string name;
  fs::path bundle;
  std::vector<const FormArray*> arrays;
};

/// The array's element in agent.xml, attribute by attribute.
ArrayConfig arrayConfig(const FormArray& a) {
  ArrayConfig c;
  c.family = a.family;
  c.serial = a.serial;
  c.model = a.model;
  c.name = a.name;
  auto& s = c.settings;
  s["serial"] = a.serial;
  s["model"] = a.model;
  if (!a.name.empty()) s["name"] = a.name;
  if (a.family == "hitachi_svp") {
    s["sim-dir"] = a.simDir;
    if (!a.simPattern.empty()) s["pattern"] = a.simPattern;
  } else if (a.family == "hitachi_df") {
    s["snm2-dir"] = std::string(kSnm2Dir);
    s["unit"] = a.unit;
  } else {
    s["address"] = a.management.front();
    s["user"] = a.user;
    s["password-file"] = "secrets/" + a.key();
  }
  return c;
}

std::string shellQuoted(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

Status writeText(const fs::path& file, std::string_view text, bool privateFile = false) {
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  if (ec) {
    return fail("io", fmt::format("{}: cannot create the folder: {}", file.parent_path().string(),
                                  ec.message()));
  }
  return platform::writeFileAtomic(file, text, privateFile);
}

std::string networkFile(const FormInterface& i, std::size_t index) {
  std::string match =
      i.mac.empty() ? fmt::format("Name=eth{}", index) : fmt::format("MACAddress={}", i.mac);
  std::string text = fmt::format(
      "# Written by pass-home onboard from the new-customer form.\n"
      "[Match]\n{}\n\n[Link]\nRequiredForOnline=yes\n\n[Network]\nAddress={}/{}\n",
      match, i.address, i.prefix);
  if (!i.gateway.empty()) text += fmt::format("Gateway={}\n", i.gateway);
  // Static addresses only: no DHCP, no router advertisements, no link-local noise.
  text += "DHCP=no\nIPv6AcceptRA=no\nLinkLocalAddressing=no\n";
  return text;
}

/// Everything installer/appliance/build.sh needs, under OUT/appliance (bundle/ is written by
/// the enrollment): appliance.env, secrets/, rootfs/, and snm2-units.txt for Hitachi DF.
Status writeApplianceInputs(const NewCustomerForm& form, const fs::path& dir) {
  const FormAppliance& a = *form.appliance;
  bool needsSnm2 = std::any_of(form.arrays.begin(), form.arrays.end(),
                               [](const FormArray& x) { return x.family == "hitachi_df"; });
  // Password files typed in on the appliance after it boots: the image ships without them.
  std::string onSite;
  for (const auto& x : form.arrays) {
    if (x.passwordFrom != PasswordSource::kOnSite) continue;
    onSite += (onSite.empty() ? "" : " ") + x.key();
  }
  std::string env = "# Written by pass-home onboard; read by installer/appliance/build.sh.\n";
  for (const auto& [key, value] : std::initializer_list<std::pair<std::string_view, std::string>>{
           {"PASS_HOSTNAME", a.hostname},
           {"PASS_CUSTOMER", form.customer},
           {"PASS_SITE", form.site},
           {"PASS_TIME_ZONE", form.timeZone},
           {"PASS_HYPERVISOR", a.hypervisor},
           {"PASS_CPUS", "1"},
           {"PASS_MEMORY_MB", "1024"},
           {"PASS_DISK_GB", "8"},
           {"PASS_NICS", std::to_string(a.interfaces.size())},
           {"PASS_SSH", a.ssh ? "on" : "off"},
           {"PASS_NEEDS_SNM2", needsSnm2 ? "yes" : "no"},
           {"PASS_ON_SITE_SECRETS", onSite}}) {
    env += fmt::format("{}={}\n", key, shellQuoted(value));
  }
  if (auto done = writeText(dir / "appliance.env", env); !done) return done;

  // rootfs/ and secrets/ are rewritten whole, so an interface or array taken off the form
  // leaves nothing behind.
  std::error_code ec;
  for (const char* sub : {"rootfs", "secrets"}) {
    fs::remove_all(dir / sub, ec);
    if (ec) {
      return fail("io", fmt::format("{}: cannot remove: {}", (dir / sub).string(), ec.message()));
    }
  }
  fs::create_directories(dir / "secrets", ec);
  if (ec) {
    return fail("io",
                fmt::format("{}: cannot create: {}", (dir / "secrets").string(), ec.message()));
  }
  if (auto done = platform::makePrivateDirectory(dir / "secrets"); !done) return done;
  for (const auto& array : form.arrays) {
    if (array.passwordFrom != PasswordSource::kFile) continue;
    if (auto done = writeText(dir / "secrets" / array.key(), array.password, true); !done)
      return done;
  }

  const fs::path root = dir / "rootfs";
  const std::string fqdn = a.domain.empty() ? a.hostname : a.hostname + "." + a.domain;
  if (auto done = writeText(root / "etc/hostname", a.hostname + "\n"); !done) return done;
  if (auto done = writeText(root / "etc/hosts",
                            fmt::format("127.0.0.1\tlocalhost\n127.0.1.1\t{} {}\n::1\tlocalhost "
                                        "ip6-localhost ip6-loopback\n",
                                        fqdn, a.hostname));
      !done) {
    return done;
  }
  for (std::size_t i = 0; i < a.interfaces.size(); ++i) {
    auto file = root / fmt::format("etc/systemd/network/1{}-eth{}.network", i, i);
    if (auto done = writeText(file, networkFile(a.interfaces[i], i)); !done) return done;
  }
  std::string resolv = "# Written by pass-home onboard from the new-customer form.\n";
  if (!a.domain.empty()) resolv += fmt::format("search {}\n", a.domain);
  for (const auto& server : a.dns) resolv += fmt::format("nameserver {}\n", server);
  if (auto done = writeText(root / "etc/resolv.conf", resolv); !done) return done;
  if (!a.ntp.empty()) {
    std::string servers;
    for (const auto& s : a.ntp) servers += (servers.empty() ? "" : " ") + s;
    if (auto done = writeText(root / "etc/systemd/timesyncd.conf.d/pass.conf",
                              fmt::format("# Written by pass-home onboard.\n[Time]\nNTP={}\n"
                                          "FallbackNTP=\n",
                                          servers));
        !done) {
      return done;
    }
  }
  if (a.ssh) {
    std::string keys;
    for (const auto& k : a.sshKeys) keys += k + "\n";
    if (auto done = writeText(root / "etc/ssh/authorized_keys/pass-admin", keys); !done)
      return done;
  }

  fs::remove(dir / "snm2-units.txt", ec);
  if (needsSnm2) {
    std::string units =
        "# The Hitachi DF arrays to register in the SNM2 CLI (installed in /opt/snm2 on the\n"
        "# appliance; it is not a Debian package and is not in the image). Register each unit\n"
        "# with SNM2's auunitadd, using the unit name and controller addresses below, then\n"
        "# check with auunitref (docs/onboarding.md).\n"
        "# unit\tserial\tmodel\tCTL0\tCTL1\n";
    for (const auto& x : form.arrays) {
      if (x.family != "hitachi_df") continue;
      units += fmt::format("{}\t{}\t{}\t{}\t{}\n", x.unit, x.serial, x.model, x.management[0],
                           x.management.size() > 1 ? x.management[1] : "-");
    }
    if (auto done = writeText(dir / "snm2-units.txt", units); !done) return done;
  }
  return {};
}

/// The customer's part of home.xml, to merge by hand (home.xml is the operator's file).
std::string homeCustomerXml(const NewCustomerForm& form) {
  pugi::xml_document doc;
  doc.append_child(pugi::node_comment)
      .set_value(fmt::format(" Written by pass-home onboard from {}: merge this <customer> into "
                             "STATE/home.xml, then run 'pass-home check-config'. ",
                             form.file.filename().string())
                     .c_str());
  auto c = doc.append_child("customer");
  c.append_attribute("name") = form.customer.c_str();
  c.append_attribute("time-zone") = form.timeZone.c_str();
  for (const auto& contact : form.contacts) {
    auto n = c.append_child("contact");
    n.append_attribute("name") = contact.name.c_str();
    n.append_attribute("role") = contact.role.c_str();
    if (!contact.email.empty()) n.append_attribute("email") = contact.email.c_str();
    if (!contact.sms.empty()) n.append_attribute("sms") = contact.sms.c_str();
    if (contact.notify != "all") n.append_attribute("notify") = contact.notify.c_str();
  }
  std::ostringstream out;
  doc.save(out, "  ", pugi::format_default | pugi::format_no_declaration, pugi::encoding_utf8);
  return out.str();
}

/// Points an agent's earlier bundle at the form's arrays (and the new endpoints, if given),
/// keeping its keys: the identity stays.
Status updateBundle(const AgentSummary& agent, const PlannedAgent& plan,
                    const std::vector<ArrayConfig>& arrays,
                    const std::vector<std::string>& endpoints) {
  const fs::path file = plan.bundle / "agent.xml";
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    return fail(
        "onboard.bundle_missing",
        fmt::format("agent {} ({}) of {} / {} was enrolled on an earlier run, but {} is "
                    "missing: run onboard with that run's --out, or revoke the agent "
                    "('pass-home revoke --agent {}') to enroll a new one",
                    agent.name, agent.id, agent.customer, agent.site, file.string(), agent.id));
  }
  auto cfg = loadAgentConfig(file);
  if (!cfg) return std::unexpected(cfg.error());
  if (formatUuid(cfg->agentId) != agent.id) {
    return fail("onboard.bundle_mismatch",
                fmt::format("{} belongs to agent {}, but the home knows {} as {}: is --out the "
                            "folder of this customer's earlier run?",
                            file.string(), formatUuid(cfg->agentId), agent.name, agent.id));
  }
  for (const char* name : kBundleFiles) {
    if (!fs::is_regular_file(plan.bundle / name, ec)) {
      return fail("onboard.bundle_missing", fmt::format("{}: missing from agent {}'s bundle",
                                                        (plan.bundle / name).string(), agent.name));
    }
  }
  cfg->arrays = arrays;
  if (!endpoints.empty()) cfg->endpoints = endpoints;
  return platform::writeFileAtomic(file, renderAgentConfig(*cfg));
}

}  // namespace

Result<OnboardReport> onboard(const OnboardOptions& options) {
  for (const auto& url : options.endpoints) {
    if (auto ok = checkEndpoint(url); !ok) return std::unexpected(ok.error());
  }
  auto form = loadForm(options.form);
  if (!form) return std::unexpected(form.error());
  StatePaths paths(options.state);
  auto store = openStateStore(paths);
  if (!store) return std::unexpected(store.error());
  auto known = store->agents();
  if (!known) return std::unexpected(known.error());

  std::vector<PlannedAgent> plans;
  if (form->appliance) {
    PlannedAgent p{form->appliance->hostname, options.out / "appliance" / "bundle", {}};
    for (const auto& a : form->arrays) {
      if (a.onAppliance()) p.arrays.push_back(&a);
    }
    plans.push_back(std::move(p));
  }
  for (const auto& a : form->arrays) {
    if (a.onAppliance()) continue;
    plans.push_back(PlannedAgent{a.svpHost, options.out / "svp" / a.svpHost, {&a}});
  }

  OnboardReport report;
  for (const auto& plan : plans) {
    std::vector<ArrayConfig> arrays;
    std::vector<ExpectedArray> expected;
    for (const FormArray* a : plan.arrays) {
      arrays.push_back(arrayConfig(*a));
      expected.push_back(ExpectedArray{a->family, a->serial, a->model, a->name, 0, {}});
    }
    auto existing = std::find_if(known->begin(), known->end(), [&](const AgentSummary& s) {
      return !s.revokedMs && s.customer == form->customer && s.site == form->site &&
             s.name == plan.name;
    });
    OnboardedAgent done{plan.name, {}, false, plan.bundle, plan.arrays.size()};
    if (existing != known->end()) {
      if (auto ok = updateBundle(*existing, plan, arrays, options.endpoints); !ok)
        return std::unexpected(ok.error());
      done.uuid = existing->id;
    } else {
      EnrollOptions enroll{form->customer, form->site,        plan.name,
                           plan.bundle,    options.endpoints, arrays};
      auto agent = enrollAgent(options.state, enroll);
      if (!agent) return std::unexpected(agent.error());
      done.uuid = agent->uuid;
      done.enrolled = true;
    }
    if (auto ok = store->setExpectedArrays(done.uuid, expected, options.nowMs); !ok)
      return std::unexpected(ok.error());
    report.agents.push_back(std::move(done));
  }
  if (form->appliance) {
    if (auto ok = writeApplianceInputs(*form, options.out / "appliance"); !ok)
      return std::unexpected(ok.error());
    for (const auto& a : form->arrays) {
      if (a.passwordFrom == PasswordSource::kOnSite) {
        report.notes.push_back(
            fmt::format("{} {}: its password is typed in on the appliance (docs/onboarding.md, "
                        "\"Passwords on site\"): /etc/pass/secrets/{}",
                        a.element, a.serial, a.key()));
      }
    }
  }
  if (auto ok = writeText(options.out / "home-customer.xml", homeCustomerXml(*form)); !ok)
    return std::unexpected(ok.error());
  report.notes.push_back(
      fmt::format("merge {} into STATE/home.xml for the customer's contacts and time zone",
                  (options.out / "home-customer.xml").string()));
  std::set<std::string> planned;
  for (const auto& p : plans) planned.insert(p.name);
  for (const auto& s : *known) {
    if (s.revokedMs || s.customer != form->customer || s.site != form->site) continue;
    if (planned.contains(s.name)) continue;
    report.notes.push_back(
        fmt::format("agent {} ({}) of this site is not on the form any more: if it is gone, "
                    "'pass-home revoke --state STATE --agent {}'",
                    s.name, s.id, s.id));
  }
  return report;
}

}  // namespace pass::home
