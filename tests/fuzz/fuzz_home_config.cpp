// libFuzzer harness for home.xml: loadHomeConfig (the schema check of config::parse, then
// home.xml's own checks, quiet hours and on-call calendars) and decide(). Built and run by
// scripts/fuzz.sh (see fuzz_hitachi_svp.cpp for the clang 16 note).
// sources: home/src/config/home_config.cpp home/src/oncall/oncall.cpp
// sources: home/src/oncall/quiet_hours.cpp
// sources: home/src/notify/notify_format.cpp home/src/notify/notify_render.cpp
// sources: home/src/notify/notify_curl.cpp
// sources: libpass/src/config.cpp libpass/src/vendor_codes.cpp libpass/src/text.cpp
// sources: libpass/src/platform/posix/fs.cpp libpass/src/platform/posix/codepage.cpp
// sources: build/dev/libpass/builtin_code_tables.cpp
// flags: -Ihome/include -Ihome/src -DUSE_OS_TZDB=1 -lical -ldate-tz -lpugixml -lcurl
//
// The input is home.xml, written to a temporary folder that holds the secret files of
// docs/home-configuration.md's example (nothing else is written; the secret and calendar
// files it names are read).
// Properties: every customer is found by name, and decide() answers for every customer, known
// or not, with a reason.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <tuple>
#include <vector>

#include "pass/home/home_config.hpp"
#include "support.hpp"

namespace {

const pass::fuzz::TempDir& folder() {
  static const pass::fuzz::TempDir kDir({{"secrets/smtp-password", "s3cret\n"},
                                         {"secrets/twilio-token", "tok\n"},
                                         {"secrets/pd-routing-key", "R0UT1NG\n"}});
  return kDir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto file = folder().write("home.xml", text);
  auto cfg = pass::home::loadHomeConfig(file);
  if (!cfg) {
    check(cfg.error().code.starts_with("config."));
    check(cfg.error().message.starts_with(file.string()));
    return 0;
  }
  for (const auto& customer : cfg->customers) {
    const auto* found = cfg->customer(customer.name);
    check(found != nullptr && found->name == customer.name);
  }
  std::vector<std::string_view> names = {"", "nobody"};
  for (const auto& customer : cfg->customers) names.push_back(customer.name);
  for (std::string_view name : names) {
    for (auto [family, code, severity] :
         {std::tuple{"hitachi_svp", "ffee01", "acute"},
          std::tuple{"hpe_3par", "0x0270001", "Minor"}, std::tuple{"nimble", "", "unknown"},
          std::tuple{"hitachi_df", "fan.alarm", "service"}}) {
      auto d = pass::home::decide(*cfg, name, "site", family, code, severity);
      check(!d.why.empty());
    }
  }
  return 0;
}
