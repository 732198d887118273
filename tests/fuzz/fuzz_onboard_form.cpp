// libFuzzer harness for the new-customer form: loadForm, the parser of the file a customer
// fills in and the home's operator onboards. Built and run by scripts/fuzz.sh (see
// fuzz_hitachi_svp.cpp for the clang 16 note).
// sources: home/src/onboarding/onboard_form.cpp libpass/src/config.cpp libpass/src/text.cpp
// sources: libpass/src/platform/posix/fs.cpp libpass/src/platform/posix/codepage.cpp
// flags: -Ihome/include -Ihome/src -DUSE_OS_TZDB=1 -ldate-tz -lpugixml
//
// The input is the form, written to form.xml in a temporary folder that holds the password
// file of docs/examples/new-customer-form.xml (the only file written; loadForm reads only
// the form and the password files it names). Properties: what loads names its customer, site
// and time zone, every array once, every array once with a serial that is a safe file name, and
// every array watched from an appliance has one.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string_view>
#include <utility>

#include "pass/config.hpp"
#include "pass/home/onboard.hpp"
#include "support.hpp"

namespace {

const pass::fuzz::TempDir& folder() {
  static const pass::fuzz::TempDir kDir(
      {{"secrets/3par-1612345.txt", "3par-read-only-password\n"}});
  return kDir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto file =
      folder().write("form.xml", std::string_view(reinterpret_cast<const char*>(data), size));
  auto form = pass::home::loadForm(file);
  if (!form) {
    check(form.error().code.starts_with("config."));
    check(form.error().message.starts_with(file.string()));
    return 0;
  }
  check(!form->customer.empty() && !form->site.empty() && !form->timeZone.empty());
  std::set<std::pair<std::string, std::string>> serials;
  for (const auto& array : form->arrays) {
    check(pass::config::safeFileName(array.serial));  // it names files on the appliance
    check(serials.emplace(array.family, array.serial).second);
    if (array.onAppliance()) check(form->appliance.has_value());
    if (array.passwordFrom == pass::home::PasswordSource::kFile) {
      check(!array.password.empty());  // read from inside the form's folder
    }
  }
  return 0;
}
