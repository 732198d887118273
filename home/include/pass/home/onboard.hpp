#pragma once
/// Onboarding: the new-customer form (docs/onboarding.md) as a validated file, and
/// `pass-home onboard`, which turns it into enrolled agents, their bundles, the appliance
/// image's inputs and the arrays the home expects each agent to report.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "pass/config.hpp"
#include "pass/result.hpp"

namespace pass::home {

/// Where an array's read-only password comes from.
enum class PasswordSource {
  kNone,    // the family needs none (hitachi-svp, hitachi-df)
  kFile,    // "file:PATH": read at onboarding, shipped in the appliance's /etc/pass/secrets
  kOnSite,  // "on-site": typed in on the appliance after it boots (docs/onboarding.md)
};

struct FormContact {
  std::string name;
  std::string role;  // management | engineer
  std::string email;
  std::string sms;
  std::string notify;  // all | urgent
};

struct FormInterface {
  std::string address;  // IPv4, dotted
  unsigned prefix = 0;  // from the netmask
  std::string gateway;  // empty: none on this interface
  std::string mac;      // empty: matched by name (eth0, eth1)
};

struct FormAppliance {
  std::string hostname;
  std::string hypervisor;  // vmware | hyper-v | virtualbox | proxmox | xen | kvm
  bool ssh = true;
  std::string domain;
  std::vector<FormInterface> interfaces;  // 1 or 2
  std::vector<std::string> dns;
  std::vector<std::string> ntp;
  std::vector<std::string> sshKeys;  // authorized_keys lines for pass-admin
};

struct FormArray {
  std::string family;   // collector family: hitachi_svp, hitachi_df, hpe_3par, nimble
  std::string element;  // as in the form and in agent.xml: hitachi-svp, hitachi-df, ...
  std::string model;
  std::string serial;
  std::string name;
  std::vector<std::string> management;  // management addresses, 1 or 2
  std::string user;
  PasswordSource passwordFrom = PasswordSource::kNone;
  std::string password;    // kFile: the file's first line and "\n", read by loadForm
  std::string unit;        // hitachi-df: the SNM2 unit name
  std::string svpHost;     // hitachi-svp: the SVP's host name, its agent's name
  std::string simDir;      // hitachi-svp
  std::string simPattern;  // hitachi-svp; empty: the collector's default
  std::string where;       // "form.xml:23"

  /// Watched from the appliance (not from an SVP).
  bool onAppliance() const { return family != "hitachi_svp"; }
  /// "<family>-<serial>": the name of its password file in /etc/pass/secrets.
  std::string key() const { return family + "-" + serial; }
};

/// The new-customer form, validated.
struct NewCustomerForm {
  std::filesystem::path file;
  std::string customer;
  std::string site;
  std::string timeZone;
  std::vector<FormContact> contacts;
  std::optional<FormAppliance> appliance;
  std::vector<FormArray> arrays;
};

/// The form's schema (elements, attributes, descriptions): docs/onboarding.md's reference.
const config::Schema& formSchema();

/// Reads and validates a form. Errors read "FILE:LINE: PATH/@ATTRIBUTE: what is wrong; what a
/// valid value looks like", with codes "config.*" (syntax, unknown keys, types) and
/// "config.value" (values, and a password file that is not a readable regular file inside the
/// form's own folder: config::confinedPath, platform::readFileBeneath); "config.io" when the
/// form cannot be read. Password files are read here, once, so what onboard writes is what was
/// checked.
Result<NewCustomerForm> loadForm(const std::filesystem::path& file);

struct OnboardOptions {
  std::filesystem::path state;  // pass-home's state directory
  std::filesystem::path form;
  std::filesystem::path out;
  /// Home URLs for new bundles, in order of preference. Empty: a bundle written before keeps
  /// its endpoints; a new one gets https://localhost:9455.
  std::vector<std::string> endpoints;
  std::int64_t nowMs = 0;
};

/// What onboarding did for one agent.
struct OnboardedAgent {
  std::string name;  // the appliance's host name or the SVP's
  std::string uuid;
  bool enrolled = false;  // true: new identity; false: the bundle of an earlier run, updated
  std::filesystem::path bundle;
  std::size_t arrays = 0;
};

struct OnboardReport {
  std::vector<OnboardedAgent> agents;
  /// Things the operator must do or know (an SVP left out of the form, contacts to merge).
  std::vector<std::string> notes;
};

/// Enrolls (or, on a re-run, updates) one agent per appliance and per SVP of the form, writes
/// their bundles under `out` (appliance/ for the image builder, svp/<host>/ for the MSI),
/// home-customer.xml (the customer's contacts for home.xml), and sets the arrays each agent
/// must report. Identities are kept across runs: an agent already enrolled under the form's
/// customer, site and name reuses its bundle in `out`. Nothing is written when the form is
/// invalid.
Result<OnboardReport> onboard(const OnboardOptions& options);

}  // namespace pass::home
