// The new-customer form: its one declaration (formSchema) and loading with the value checks
// that say what a valid value looks like.

#include <algorithm>
#include <array>
#include <cctype>
#include <set>
#include <string_view>

#include <date/tz.h>
#include <fmt/format.h>
#include <boost/asio/ip/address.hpp>

#include "pass/home/onboard.hpp"
#include "platform/fs.hpp"

namespace pass::home {

namespace {

namespace fs = std::filesystem;
using config::attribute;
using config::AttributeDecl;
using config::ElementDecl;
using config::Findings;
using config::Node;
using config::Type;

constexpr std::string_view kRoot = "new-customer-form";
constexpr std::string_view kCustomer = "new-customer-form/customer";
constexpr std::string_view kContact = "new-customer-form/customer/contact";
constexpr std::string_view kAppliance = "new-customer-form/appliance";
constexpr std::string_view kInterface = "new-customer-form/appliance/interface";
constexpr std::string_view kDns = "new-customer-form/appliance/dns";
constexpr std::string_view kNtp = "new-customer-form/appliance/ntp";
constexpr std::string_view kSshKey = "new-customer-form/appliance/ssh-key";
constexpr std::string_view kArray = "new-customer-form/array";

constexpr std::array kElements{
    ElementDecl{kRoot, 1, 1, "One customer site: who is told, the appliance, the arrays."},
    ElementDecl{kCustomer, 1, 1, "The customer and the site, as the home will know them."},
    ElementDecl{kContact, 0, 0,
                "A person told about the site's tickets; becomes a <contact> of the customer in "
                "home.xml (onboarding writes home-customer.xml to merge)."},
    ElementDecl{kAppliance, 0, 1,
                "The PASS appliance VM that watches the site's Hitachi DF, HPE 3PAR and Nimble "
                "arrays. Needed when the form lists any of those."},
    ElementDecl{kInterface, 1, 2,
                "A network interface of the appliance, in order: the first is eth0, the second "
                "eth1. Static addresses only."},
    ElementDecl{kDns, 0, 3, "A DNS server of the site, in order of preference."},
    ElementDecl{kNtp, 0, 0,
                "An NTP server of the site. Without any, the appliance asks Debian's pool "
                "(which a closed network usually blocks: give the site's own)."},
    ElementDecl{kSshKey, 0, 0,
                "An SSH public key of an engineer allowed to log in as pass-admin (key only, "
                "no passwords). At least one when ssh is on."},
    ElementDecl{kArray, 1, 0,
                "An array to watch. hitachi-svp arrays (DKC/DW: USP, VSP, HUS-VM, HP XP) get an "
                "agent on their SVP; the others are watched from the appliance."},
};

constexpr std::array kAttributes{
    AttributeDecl{kRoot, "schema", Type::kUint, true, {}, "Version of this form's layout; 1."},
    AttributeDecl{kCustomer, "name", Type::kString, true, {}, "The customer's name."},
    AttributeDecl{kCustomer, "site", Type::kString, true, {}, "The site (data centre) name."},
    AttributeDecl{kCustomer, "time-zone", Type::kString, false, "UTC",
                  "IANA time zone of the site, e.g. Europe/Berlin: the customer's quiet hours "
                  "at the home (home-customer.xml)."},
    AttributeDecl{kContact, "name", Type::kString, true, {}, "The person's name."},
    AttributeDecl{kContact, "role", Type::kString, false, "management",
                  "management (told of every ticket) or engineer (told when on call)."},
    AttributeDecl{kContact, "email", Type::kString, false, {}, "E-mail address."},
    AttributeDecl{kContact,
                  "sms",
                  Type::kString,
                  false,
                  {},
                  "Mobile number in E.164 form, e.g. +4915112345678."},
    AttributeDecl{kContact, "notify", Type::kString, false, "all",
                  "all, or urgent: only urgent tickets."},
    AttributeDecl{kAppliance,
                  "hostname",
                  Type::kString,
                  true,
                  {},
                  "The appliance's host name, also its agent's name, e.g. pass-acme-fra2."},
    AttributeDecl{kAppliance,
                  "hypervisor",
                  Type::kString,
                  true,
                  {},
                  "Where it runs: vmware, hyper-v, virtualbox, proxmox, xen or kvm (chooses "
                  "the image file to ship)."},
    AttributeDecl{kAppliance, "ssh", Type::kString, false, "on",
                  "on: SSH (port 22) is the only inbound port; off: none at all."},
    AttributeDecl{
        kAppliance, "domain", Type::kString, false, {}, "DNS search domain, e.g. acme.example."},
    AttributeDecl{
        kInterface, "address", Type::kString, true, {}, "Static IPv4 address, e.g. 10.20.30.40."},
    AttributeDecl{kInterface,
                  "netmask",
                  Type::kString,
                  true,
                  {},
                  "Netmask, e.g. 255.255.255.0 (or a prefix length, 24)."},
    AttributeDecl{kInterface,
                  "gateway",
                  Type::kString,
                  false,
                  {},
                  "Default gateway, inside the interface's subnet; on one interface at most."},
    AttributeDecl{kInterface,
                  "mac",
                  Type::kString,
                  false,
                  {},
                  "MAC address the hypervisor gives this interface, e.g. 00:50:56:aa:bb:cc; "
                  "empty: matched by order (eth0, eth1)."},
    AttributeDecl{kDns, "server", Type::kString, true, {}, "IP address, e.g. 10.20.0.53."},
    AttributeDecl{kNtp,
                  "server",
                  Type::kString,
                  true,
                  {},
                  "Host name or IP address, e.g. ntp1.acme.example."},
    AttributeDecl{kSshKey,
                  "key",
                  Type::kString,
                  true,
                  {},
                  "One authorized_keys line: \"ssh-ed25519 AAAA... name@example\"."},
    AttributeDecl{kArray,
                  "family",
                  Type::kString,
                  true,
                  {},
                  "hitachi-svp (DKC/DW on their SVP), hitachi-df (AMS, HUS 100), hpe-3par or "
                  "nimble."},
    AttributeDecl{kArray, "model", Type::kString, true, {}, "The model, e.g. VSP G900, HUS130."},
    AttributeDecl{kArray,
                  "serial",
                  Type::kString,
                  true,
                  {},
                  "The serial number as the array reports it: 1 to 64 letters, digits, '.', "
                  "'-' or '_' (it names files), not \".\" or \"..\"."},
    AttributeDecl{kArray, "name", Type::kString, false, {}, "A name for people, shown in tickets."},
    AttributeDecl{kArray,
                  "management",
                  Type::kString,
                  true,
                  {},
                  "Management IP address(es), one or two separated by a space: the SVP, the "
                  "controllers (hitachi-df: CTL0 CTL1), the node or group address."},
    AttributeDecl{kArray,
                  "user",
                  Type::kString,
                  false,
                  {},
                  "The read-only account (hpe-3par, nimble; hitachi-df: the SNM2 account, if "
                  "account authentication is on)."},
    AttributeDecl{kArray,
                  "password",
                  Type::kString,
                  false,
                  {},
                  "Where the account's password comes from: \"file:PATH\" (a file in the "
                  "form's own folder, e.g. file:secrets/3par.txt: relative, no '..', no link "
                  "out of the folder; shipped inside the appliance) or \"on-site\" (typed in "
                  "on the appliance after it boots). hpe-3par and nimble only."},
    AttributeDecl{kArray,
                  "unit",
                  Type::kString,
                  false,
                  {},
                  "hitachi-df: the unit name to register in SNM2; default: the name, else the "
                  "serial."},
    AttributeDecl{kArray,
                  "svp-host",
                  Type::kString,
                  false,
                  {},
                  "hitachi-svp: the SVP's host name, its agent's name; default svp-SERIAL."},
    AttributeDecl{kArray,
                  "sim-dir",
                  Type::kString,
                  false,
                  {},
                  "hitachi-svp: the SVP's folder of SIM log files, e.g. D:\\SVP\\SIM."},
    AttributeDecl{kArray,
                  "sim-pattern",
                  Type::kString,
                  false,
                  {},
                  "hitachi-svp: which files in sim-dir are SIM logs, e.g. sim*.log; default "
                  "*.log."},
};

struct Family {
  std::string_view element;
  std::string_view family;
};
constexpr std::array kFamilies{Family{"hitachi-svp", "hitachi_svp"},
                               Family{"hitachi-df", "hitachi_df"}, Family{"hpe-3par", "hpe_3par"},
                               Family{"nimble", "nimble"}};
constexpr std::array<std::string_view, 6> kHypervisors = {"vmware",  "hyper-v", "virtualbox",
                                                          "proxmox", "xen",     "kvm"};

std::optional<boost::asio::ip::address_v4> ipv4(std::string_view text) {
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address_v4(std::string(text), ec);
  if (ec) return std::nullopt;
  return a;
}

bool ipAddress(std::string_view text) {
  boost::system::error_code ec;
  (void)boost::asio::ip::make_address(std::string(text), ec);
  return !ec;
}

/// RFC 1123 host name: dot-separated labels of letters, digits and '-', none starting or
/// ending with '-'.
bool hostName(std::string_view text, bool singleLabel) {
  if (text.empty() || text.size() > 253) return false;
  std::size_t labelStart = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '.') {
      auto label = text.substr(labelStart, i - labelStart);
      if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
        return false;
      if (singleLabel && i != text.size()) return false;
      labelStart = i + 1;
      continue;
    }
    auto c = static_cast<unsigned char>(text[i]);
    if (!std::isalnum(c) && c != '-') return false;
  }
  return true;
}

std::optional<unsigned> prefixOf(std::string_view netmask) {
  std::string_view bare = netmask.starts_with('/') ? netmask.substr(1) : netmask;
  if (!bare.empty() && bare.size() <= 2 &&
      std::all_of(bare.begin(), bare.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    unsigned n = static_cast<unsigned>(std::stoul(std::string(bare)));
    if (n >= 1 && n <= 32) return n;
    return std::nullopt;
  }
  auto mask = ipv4(netmask);
  if (!mask) return std::nullopt;
  std::uint32_t bits = mask->to_uint();
  // Contiguous ones from the top: the inverted mask plus one is a power of two.
  std::uint32_t inverted = ~bits;
  if (bits == 0 || (inverted & (inverted + 1)) != 0) return std::nullopt;
  return static_cast<unsigned>(32 - std::countr_one(inverted));
}

bool sameSubnet(const boost::asio::ip::address_v4& a, const boost::asio::ip::address_v4& b,
                unsigned prefix) {
  std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
  return (a.to_uint() & mask) == (b.to_uint() & mask);
}

bool macAddress(std::string_view s) {
  if (s.size() != 17) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i % 3 == 2) {
      if (s[i] != ':') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

bool e164(std::string_view s) {
  return s.size() >= 8 && s.size() <= 16 && s.front() == '+' &&
         std::all_of(s.begin() + 1, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool sshKeyLine(std::string_view s) {
  constexpr std::array<std::string_view, 6> kTypes = {
      "ssh-ed25519 ",         "ssh-rsa ",
      "ecdsa-sha2-nistp256 ", "ecdsa-sha2-nistp384 ",
      "ecdsa-sha2-nistp521 ", "sk-ssh-ed25519@openssh.com "};
  if (s.find_first_of("\r\n") != std::string_view::npos) return false;
  for (auto type : kTypes) {
    if (!s.starts_with(type)) continue;
    auto blob = s.substr(type.size());
    blob = blob.substr(0, blob.find(' '));
    return blob.size() >= 16 && std::all_of(blob.begin(), blob.end(), [](char c) {
             return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=';
           });
  }
  return false;
}

std::vector<std::string> splitList(std::string_view text) {
  std::vector<std::string> out;
  std::string current;
  for (char c : text) {
    if (c == ' ' || c == ',' || c == '\t') {
      if (!current.empty()) out.push_back(std::exchange(current, {}));
    } else {
      current += c;
    }
  }
  if (!current.empty()) out.push_back(current);
  return out;
}

/// The password's first line and a newline, from `value` (what follows "file:"): a file in
/// the form's own folder (config::confinedPath, platform::readFileBeneath). The form comes
/// from outside; whatever it names is shipped in the customer's image.
Result<std::string> readPassword(const fs::path& form, std::string_view value) {
  constexpr std::size_t kMaxPasswordFileBytes = 64 * 1024;
  auto relative = config::confinedPath(value);
  if (!relative) return std::unexpected(relative.error());
  fs::path folder = form.parent_path();
  if (folder.empty()) folder = ".";
  auto text = platform::readFileBeneath(folder, *relative, kMaxPasswordFileBytes);
  if (!text) return std::unexpected(text.error());
  std::string line = text->substr(0, text->find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) {
    return fail("config.value", fmt::format("{} is empty (the first line is the password)",
                                            platform::displayPath(folder / *relative)));
  }
  return line + "\n";
}

std::string where(const NewCustomerForm& form, const Node& node) {
  return fmt::format("{}:{}", form.file.filename().string(), node.line);
}

void readAppliance(const config::Document& doc, Findings& findings, NewCustomerForm& form) {
  const Node* node = doc.first(kAppliance);
  if (node == nullptr) return;
  FormAppliance a;
  a.hostname = attribute(*node, "hostname");
  if (!hostName(a.hostname, true)) {
    findings.add(*node, "hostname",
                 fmt::format("\"{}\" is not a host name: letters, digits and '-', at most 63, "
                             "e.g. pass-acme-fra2",
                             a.hostname));
  }
  a.hypervisor = attribute(*node, "hypervisor");
  if (std::find(kHypervisors.begin(), kHypervisors.end(), a.hypervisor) == kHypervisors.end()) {
    findings.add(*node, "hypervisor",
                 fmt::format("\"{}\" is not one of vmware, hyper-v, virtualbox, proxmox, xen, kvm",
                             a.hypervisor));
  }
  const std::string& ssh = attribute(*node, "ssh");
  if (ssh != "on" && ssh != "off") {
    findings.add(*node, "ssh", fmt::format("\"{}\" must be on or off", ssh));
  }
  a.ssh = ssh == "on";
  a.domain = attribute(*node, "domain");
  if (!a.domain.empty() && !hostName(a.domain, false)) {
    findings.add(*node, "domain",
                 fmt::format("\"{}\" is not a domain name, e.g. acme.example", a.domain));
  }
  bool gatewaySeen = false;
  for (const Node* n : doc.all(kInterface)) {
    FormInterface i;
    i.address = attribute(*n, "address");
    auto address = ipv4(i.address);
    if (!address) {
      findings.add(*n, "address",
                   fmt::format("\"{}\" is not an IPv4 address, e.g. 10.20.30.40", i.address));
    }
    auto prefix = prefixOf(attribute(*n, "netmask"));
    if (!prefix) {
      findings.add(*n, "netmask",
                   fmt::format("\"{}\" is not a netmask, e.g. 255.255.255.0 or 24",
                               attribute(*n, "netmask")));
    }
    i.prefix = prefix.value_or(0);
    i.gateway = attribute(*n, "gateway");
    if (!i.gateway.empty()) {
      auto gateway = ipv4(i.gateway);
      if (!gateway) {
        findings.add(*n, "gateway",
                     fmt::format("\"{}\" is not an IPv4 address, e.g. 10.20.30.1", i.gateway));
      } else if (address && prefix && !sameSubnet(*address, *gateway, *prefix)) {
        findings.add(*n, "gateway",
                     fmt::format("{} is outside {}/{}: the gateway must be in the interface's "
                                 "subnet",
                                 i.gateway, i.address, *prefix));
      } else if (address && *gateway == *address) {
        findings.add(*n, "gateway", "is the interface's own address");
      }
      if (gatewaySeen) {
        findings.add(*n, "gateway",
                     "a second default gateway: give the gateway on one interface only");
      }
      gatewaySeen = true;
    }
    i.mac = attribute(*n, "mac");
    if (!i.mac.empty() && !macAddress(i.mac)) {
      findings.add(*n, "mac",
                   fmt::format("\"{}\" is not a MAC address, e.g. 00:50:56:aa:bb:cc", i.mac));
    }
    std::transform(i.mac.begin(), i.mac.end(), i.mac.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    a.interfaces.push_back(std::move(i));
  }
  for (const Node* n : doc.all(kDns)) {
    const std::string& server = attribute(*n, "server");
    if (!ipAddress(server)) {
      findings.add(*n, "server",
                   fmt::format("\"{}\" is not an IP address, e.g. 10.20.0.53", server));
    }
    a.dns.push_back(server);
  }
  for (const Node* n : doc.all(kNtp)) {
    const std::string& server = attribute(*n, "server");
    if (!ipAddress(server) && !hostName(server, false)) {
      findings.add(
          *n, "server",
          fmt::format("\"{}\" is not a host name or IP address, e.g. ntp1.acme.example", server));
    }
    a.ntp.push_back(server);
  }
  for (const Node* n : doc.all(kSshKey)) {
    const std::string& key = attribute(*n, "key");
    if (!sshKeyLine(key)) {
      findings.add(*n, "key",
                   "is not an SSH public key line: \"ssh-ed25519 AAAA... name@example\" (the "
                   "contents of an id_ed25519.pub)");
    }
    a.sshKeys.push_back(key);
  }
  if (a.ssh && a.sshKeys.empty()) {
    findings.add(*node, "ssh",
                 "is on, but no <ssh-key> says who may log in: add one, or set ssh=\"off\"");
  }
  form.appliance = std::move(a);
}

bool readArray(const Node& n, Findings& findings, NewCustomerForm& form) {
  FormArray a;
  a.where = where(form, n);
  a.element = attribute(n, "family");
  auto family = std::find_if(kFamilies.begin(), kFamilies.end(),
                             [&](const Family& f) { return f.element == a.element; });
  if (family == kFamilies.end()) {
    findings.add(
        n, "family",
        fmt::format("\"{}\" is not one of hitachi-svp, hitachi-df, hpe-3par, nimble", a.element));
    return false;
  }
  a.family = family->family;
  a.model = attribute(n, "model");
  if (a.model.empty()) findings.add(n, "model", "is empty: the model, e.g. VSP G900");
  a.serial = attribute(n, "serial");
  if (!config::safeFileName(a.serial)) {
    findings.add(n, "serial",
                 fmt::format("\"{}\" is not a serial number: {}, e.g. 470849", a.serial,
                             config::kSafeFileNameRule));
  }
  a.name = attribute(n, "name");
  a.management = splitList(attribute(n, "management"));
  if (a.management.empty() || a.management.size() > 2) {
    findings.add(n, "management",
                 "must be one or two addresses separated by a space, e.g. \"10.20.5.10 "
                 "10.20.5.11\"");
  }
  for (const auto& m : a.management) {
    if (!ipAddress(m) && !hostName(m, false)) {
      findings.add(n, "management",
                   fmt::format("\"{}\" is not an IP address or host name, e.g. 10.20.5.10", m));
    }
  }
  a.user = attribute(n, "user");
  const std::string& password = attribute(n, "password");
  const bool needsAccount = a.family == "hpe_3par" || a.family == "nimble";
  if (needsAccount && a.user.empty()) {
    findings.add(n, "user",
                 fmt::format("is missing: {} arrays are read with a read-only account", a.element));
  }
  if (password.empty()) {
    if (needsAccount) {
      findings.add(n, "password",
                   "is missing: \"file:PATH\" (a file beside the form) or \"on-site\"");
    }
  } else if (!needsAccount) {
    findings.add(n, "password",
                 fmt::format("{} arrays need no password here{}", a.element,
                             a.family == "hitachi_svp"
                                 ? ": the agent reads the SVP's own SIM logs"
                                 : ": the SNM2 CLI on the appliance keeps its own login"));
  } else if (password == "on-site") {
    a.passwordFrom = PasswordSource::kOnSite;
  } else if (password.starts_with("file:") && password.size() > 5) {
    a.passwordFrom = PasswordSource::kFile;
    if (auto read = readPassword(form.file, std::string_view(password).substr(5)); !read) {
      findings.add(n, "password", read.error().message);
    } else {
      a.password = std::move(*read);
    }
  } else {
    findings.add(n, "password",
                 fmt::format("\"{}\" must be \"file:PATH\" (a file beside the form, e.g. "
                             "file:secrets/3par.txt) or \"on-site\"",
                             password));
  }
  a.unit = attribute(n, "unit");
  a.svpHost = attribute(n, "svp-host");
  a.simDir = attribute(n, "sim-dir");
  a.simPattern = attribute(n, "sim-pattern");
  if (a.family == "hitachi_df" && a.unit.empty()) a.unit = a.name.empty() ? a.serial : a.name;
  if (a.family != "hitachi_df" && !a.unit.empty()) {
    findings.add(n, "unit", "is for hitachi-df arrays only");
  }
  if (a.family == "hitachi_svp") {
    if (a.svpHost.empty()) a.svpHost = "svp-" + a.serial;
    if (!hostName(a.svpHost, true)) {
      findings.add(n, "svp-host",
                   fmt::format("\"{}\" is not a host name, e.g. svp-470849", a.svpHost));
    }
    if (a.simDir.empty()) {
      findings.add(n, "sim-dir",
                   "is missing: the SVP's folder of SIM log files, e.g. D:\\SVP\\SIM "
                   "(docs/install-windows.md)");
    }
  } else {
    for (std::string_view key : {"svp-host", "sim-dir", "sim-pattern"}) {
      if (!attribute(n, key).empty()) {
        findings.add(n, key, "is for hitachi-svp arrays only");
      }
    }
  }
  form.arrays.push_back(std::move(a));
  return true;
}

}  // namespace

const config::Schema& formSchema() {
  static const config::Schema kSchema{kElements, kAttributes};
  return kSchema;
}

Result<NewCustomerForm> loadForm(const fs::path& file) {
  auto text = config::readConfigFile(file);
  if (!text) return std::unexpected(text.error());
  auto doc = config::parse(formSchema(), *text, file.string());
  if (!doc) return std::unexpected(doc.error());
  NewCustomerForm form;
  form.file = file;
  Findings findings(file.string());

  const Node* root = doc->first(kRoot);
  if (config::uintAttribute(*root, "schema") != 1) findings.add(*root, "schema", "must be 1");
  const Node* customer = doc->first(kCustomer);
  form.customer = attribute(*customer, "name");
  form.site = attribute(*customer, "site");
  form.timeZone = attribute(*customer, "time-zone");
  for (std::string_view key : {"name", "site"}) {
    const std::string& value = attribute(*customer, key);
    if (value.empty() || value.size() > 200 ||
        value.find_first_of("\r\n\t\x1f") != std::string::npos) {
      findings.add(*customer, key, "must be 1 to 200 characters on one line");
    }
  }
  try {
    (void)date::locate_zone(form.timeZone);
  } catch (const std::exception&) {
    findings.add(
        *customer, "time-zone",
        fmt::format("\"{}\" is not an IANA time zone, e.g. Europe/Berlin or UTC", form.timeZone));
  }
  for (const Node* n : doc->all(kContact)) {
    FormContact c{attribute(*n, "name"), attribute(*n, "role"), attribute(*n, "email"),
                  attribute(*n, "sms"), attribute(*n, "notify")};
    if (c.role != "management" && c.role != "engineer") {
      findings.add(*n, "role", fmt::format("\"{}\" must be management or engineer", c.role));
    }
    if (c.notify != "all" && c.notify != "urgent") {
      findings.add(*n, "notify", fmt::format("\"{}\" must be all or urgent", c.notify));
    }
    if (!c.email.empty() && (c.email.find('@') == std::string::npos ||
                             c.email.find_first_of(" \t<>") != std::string::npos)) {
      findings.add(*n, "email",
                   fmt::format("\"{}\" is not an e-mail address, e.g. ops@acme.example", c.email));
    }
    if (!c.sms.empty() && !e164(c.sms)) {
      findings.add(*n, "sms",
                   fmt::format("\"{}\" is not an E.164 number, e.g. +4915112345678", c.sms));
    }
    if (c.email.empty() && c.sms.empty()) {
      findings.add(*n, "email", "and sms are both empty: give one at least");
    }
    form.contacts.push_back(std::move(c));
  }
  readAppliance(*doc, findings, form);

  std::vector<const Node*> arrayNodes;  // arrayNodes[i] declared form.arrays[i]
  for (const Node* n : doc->all(kArray)) {
    if (readArray(*n, findings, form)) arrayNodes.push_back(n);
  }
  // Uniqueness: a serial once per family, an agent name once per site.
  std::set<std::pair<std::string, std::string>> serials;
  std::set<std::string> agentNames;
  if (form.appliance) agentNames.insert(form.appliance->hostname);
  bool applianceArrays = false;
  for (std::size_t i = 0; i < form.arrays.size(); ++i) {
    const FormArray& a = form.arrays[i];
    const Node& n = *arrayNodes[i];
    if (!serials.emplace(a.family, a.serial).second) {
      findings.add(n, "serial", fmt::format("{} {} is listed twice", a.element, a.serial));
    }
    if (a.family == "hitachi_svp" && !agentNames.insert(a.svpHost).second) {
      findings.add(n, "svp-host",
                   fmt::format("\"{}\" is already the name of another agent of this site "
                               "(the appliance or another SVP)",
                               a.svpHost));
    }
    if (a.onAppliance()) {
      applianceArrays = true;
      if (!form.appliance) {
        findings.add(n, "family",
                     fmt::format("{} arrays are watched from the appliance: add an <appliance> "
                                 "element (docs/onboarding.md)",
                                 a.element));
      }
    }
  }
  if (form.appliance && !form.appliance->ssh) {
    for (std::size_t i = 0; i < form.arrays.size(); ++i) {
      if (form.arrays[i].passwordFrom != PasswordSource::kOnSite) continue;
      findings.add(*arrayNodes[i], "password",
                   "\"on-site\" needs someone to log in to the appliance, but its ssh is off: "
                   "give the password as \"file:PATH\", or set ssh=\"on\"");
    }
  }
  if (form.appliance && !applianceArrays) {
    findings.add(*doc->first(kAppliance), "hostname",
                 "the appliance has no array to watch: add a hitachi-df, hpe-3par or nimble "
                 "array, or remove <appliance> (hitachi-svp arrays are watched from their SVP)");
  }
  if (auto ok = findings.status(); !ok) return std::unexpected(ok.error());
  return form;
}

}  // namespace pass::home
