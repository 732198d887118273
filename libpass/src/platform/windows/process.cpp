#include "platform/process.hpp"

#include <fmt/format.h>

namespace pass::platform {

// Only the hitachi_df collector runs programs, and it runs on the Linux appliance, next to the
// SNM2 CLI; the Windows agent (pass-svp on a DKC SVP) never needs this. A CreateProcessW and
// job-object version is the thing to write if a Windows collector ever does.
Result<ProcessResult> runProcess(const std::vector<std::string>& argv, const ProcessOptions&) {
  return fail("unsupported", fmt::format("running {} is not supported on Windows in this version",
                                         argv.empty() ? std::string("a program") : argv.front()));
}

}  // namespace pass::platform
